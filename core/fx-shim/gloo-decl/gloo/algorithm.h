// Declarations only (see ../README.md): ProcessGroupGloo.hpp includes it, uses nothing of it.
#pragma once
