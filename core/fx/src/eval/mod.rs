//! Evaluation metrics of the three tasks.
pub mod auc;
