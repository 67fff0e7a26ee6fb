//! fx-data: samples, augmentation, the parallel loader and the PHANTOM generator.
pub mod augment;
pub mod cache;
pub mod chexpert_labels;
pub mod coco;
pub mod dataset;
pub mod input;
pub mod loader;
pub mod masks;
pub mod nlm_tb;
pub mod rng;
