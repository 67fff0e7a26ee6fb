//! The file names of the NLM tuberculosis sets (Shenzhen `CHNCXR_0001_0.png`, Montgomery
//! `MCUCXR_0001_0.png`): a running number and the label as the last digit (1 = tuberculosis).

use fx_plugin::PluginError;
use std::path::Path;

/// The `<PREFIX>_<nnnn>_<0|1>.png` files of a folder, sorted, with their label; other PNGs are
/// named in a warning, other files ignored.
pub fn images(dir: &Path, prefix: &str, warnings: &mut Vec<String>) -> Result<Vec<(String, f32)>, PluginError> {
    let read = std::fs::read_dir(dir)
        .map_err(|e| PluginError::input(dir.display(), format!("cannot list the image folder: {e}")))?;
    let mut out = Vec::new();
    let mut odd = Vec::new();
    for entry in read {
        let entry =
            entry.map_err(|e| PluginError::input(dir.display(), format!("cannot list the image folder: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".png").or_else(|| name.strip_suffix(".PNG")) else { continue };
        match label_of(stem, prefix) {
            Some(l) => out.push((stem.to_string(), l)),
            None => odd.push(name),
        }
    }
    if !odd.is_empty() {
        odd.sort();
        warnings.push(format!(
            "{}: {} PNG file(s) not named {prefix}_<number>_<0|1>.png are not samples: {}",
            dir.display(),
            odd.len(),
            odd.join(", ")
        ));
    }
    if out.is_empty() {
        return Err(PluginError::input(dir.display(), format!("no {prefix}_<number>_<0|1>.png images in this folder")));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// 1 for `..._1`, 0 for `..._0`; None when the name does not follow the set's pattern.
pub fn label_of(stem: &str, prefix: &str) -> Option<f32> {
    let rest = stem.strip_prefix(prefix)?.strip_prefix('_')?;
    let (num, label) = rest.split_once('_')?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match label {
        "0" => Some(0.0),
        "1" => Some(1.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_the_suffix() {
        assert_eq!(label_of("CHNCXR_0001_0", "CHNCXR"), Some(0.0));
        assert_eq!(label_of("CHNCXR_0662_1", "CHNCXR"), Some(1.0));
        assert_eq!(label_of("CHNCXR_0662_2", "CHNCXR"), None);
        assert_eq!(label_of("CHNCXR_0001_0_mask", "CHNCXR"), None);
        assert_eq!(label_of("MCUCXR_0001_0", "CHNCXR"), None);
        assert_eq!(label_of("MCUCXR_0001_0", "MCUCXR"), Some(0.0));
        assert_eq!(label_of("MCUCXR_0399_1", "MCUCXR"), Some(1.0));
        assert_eq!(label_of("MCUCXR_0399", "MCUCXR"), None);
        assert_eq!(label_of("MCUCXR_x_1", "MCUCXR"), None);
    }
}
