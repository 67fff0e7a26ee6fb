//! Evaluation metrics of the three tasks.
pub mod auc;
pub mod dice;
pub mod map;
