# The two commands of the README: `make demo` and `make test`. Both do all set-up first.
SHELL := /bin/bash
PYTHON ?= python3
CARGO ?= cargo
TORCH_VERSION := 2.11.0
FX := target/release/fx-tui

.PHONY: setup libtorch tools build demo test lint bench fixtures fuzz stress clean

setup: libtorch tools build

# tmux drives the viewer's end-to-end test in a real terminal.
tools:
	@command -v tmux >/dev/null || (apt-get update -qq && apt-get install -y -qq tmux)

# libtorch comes from the PyPI torch wheel (its CUDA 13 build; the CUDA libraries are needed even on CPU).
libtorch:
	@if $(PYTHON) -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$(TORCH_VERSION)' else 1)" 2>/dev/null; then \
	  echo "libtorch: torch $(TORCH_VERSION) present"; \
	else \
	  echo "libtorch: installing torch==$(TORCH_VERSION) from PyPI (about 4 GB, once)"; \
	  $(PYTHON) -m pip install --quiet torch==$(TORCH_VERSION); \
	fi
	@# fx-shim compiles its NCCL binding against ProcessGroupNCCL.hpp, which includes the CUDA
	@# runtime headers; the wheel's nvidia-cuda-runtime lacks two folders of them (crt/, nv/),
	@# shipped by these two header-only wheels of the same CUDA 13.0. Without them fx builds with
	@# Gloo only.
	@if $(PYTHON) -c "import torch,sys; sys.exit(0 if (torch.version.cuda or '').startswith('13.0') else 1)"; then \
	  $(PYTHON) -m pip install --quiet nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85 \
	    || echo "warning: the CUDA header wheels did not install; fx builds without NCCL"; \
	fi

build: libtorch
	$(CARGO) build --release --workspace

demo: setup
	$(FX) experiments/demo.toml

test: setup
	$(CARGO) test --release --workspace

# The gates CI runs before the tests: formatting, clippy with warnings as errors, documentation
# without warnings. --release everywhere so clippy, rustdoc and the tests share one build of the
# dependencies.
lint: libtorch
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --release --no-deps --workspace

# The three branches' training steps at the paper's sizes (Swin-B 224; DINO 900 queries, 100 DN).
# Batch 8 on a CPU (BENCH_BATCH=24 for the paper's; the localization step at batch 24 needs ~33 GB
# of host memory on a CPU and is skipped below 40 GB).
bench: setup
	# fx and PyTorch (timm Swin, torch.optim.AdamW, torch.autocast) side by side: the same cls and
	# seg steps in fp32 and bf16, img/s and the ratio fx / PyTorch; then fx's loc step.
	bash scripts/bench_vs_torch.sh
	$(PYTHON) -m pip install --quiet pydicom==3.0.2 pylibjpeg==2.1.0 pylibjpeg-openjpeg==2.6.0 SimpleITK==2.5.7 pillow numpy
	$(PYTHON) scripts/make_bench_images.py target/bench-images
	$(FX) bench --task input --images target/bench-images --image-size 224
	# The runs browser over 500 fabricated run directories: index + first frame, an idle refresh.
	$(CARGO) test --release -p fx-view --test browser five_hundred -- --nocapture
	# The viewer, export and report on a paper-scale run (20 cycles × 29 epochs, 20 pairs).
	bash scripts/bench_tracking.sh

# Thousands of generated inputs per parser (make test runs a few hundred).
fuzz: setup
	PROPTEST_CASES=5000 $(CARGO) test --release -p fx --test fuzz

# kill -9 at random moments of a cls+loc+seg run, 20 times, then compare with a straight run.
stress: setup
	FX_STRESS_KILLS=20 $(CARGO) test --release -p fx-tui --test cli -- --ignored stress --nocapture

# Regenerates the committed parity fixtures (needs timm + scikit-learn, pydicom & co.; never needed by the tests).
fixtures:
	$(PYTHON) -m pip install --quiet timm==1.0.31 torchvision==0.26.0 scikit-learn==1.9.1
	$(PYTHON) scripts/make_fixtures.py
	$(PYTHON) -m pip install --quiet pydicom==3.0.2 numpy SimpleITK==2.5.7 pillow pylibjpeg==2.1.0 pylibjpeg-openjpeg==2.6.0 pylibjpeg-libjpeg==2.5.0 python-gdcm==3.2.6 pyjpegls==1.5.1
	$(PYTHON) scripts/make_image_fixtures.py
	$(PYTHON) scripts/make_dataset_fixtures.py
	for f in scripts/dataset_fixtures/*.py; do $(PYTHON) $$f || exit 1; done

clean:
	$(CARGO) clean
