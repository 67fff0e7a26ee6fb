//! What a reader needs from a run's `experiment.toml` (the trainer's full config is fx::config;
//! this reads the few keys the viewer and exports show, and ignores the rest).

/// One `[[datasets]]` entry of `experiment.toml`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatasetEntry {
    pub plugin: String,
    pub name: String,
    pub tasks: Vec<String>,
}

/// What the viewer needs from `experiment.toml`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExperimentInfo {
    pub name: String,
    pub arch: String,
    pub image_size: Option<i64>,
    pub cycles: Option<i64>,
    pub batch_size: Option<i64>,
    pub datasets: Vec<DatasetEntry>,
    /// Folders whose dataset files the viewer's add key offers.
    pub watch: Vec<std::path::PathBuf>,
}

impl ExperimentInfo {
    /// Reads the few keys the viewer shows; anything else in the file is ignored.
    pub fn parse(text: &str) -> Result<ExperimentInfo, toml::de::Error> {
        let v: toml::Table = toml::from_str(text)?;
        let s = |t: Option<&toml::Value>| t.and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let int = |t: Option<&toml::Value>| t.and_then(|v| v.as_integer());
        let model = v.get("model").and_then(|m| m.as_table());
        let train = v.get("train").and_then(|m| m.as_table());
        let datasets = v
            .get("datasets")
            .and_then(|d| d.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_table())
                    .map(|d| {
                        let plugin = s(d.get("plugin"));
                        let name =
                            d.get("name").and_then(|n| n.as_str()).map(String::from).unwrap_or_else(|| plugin.clone());
                        let tasks = d
                            .get("tasks")
                            .and_then(|t| t.as_array())
                            .map(|t| t.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                            .unwrap_or_default();
                        DatasetEntry { plugin, name, tasks }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(ExperimentInfo {
            name: s(v.get("name")),
            arch: s(model.and_then(|m| m.get("arch"))),
            image_size: int(model.and_then(|m| m.get("image_size"))),
            cycles: int(train.and_then(|m| m.get("cycles"))),
            batch_size: int(train.and_then(|m| m.get("batch_size"))),
            datasets,
            watch: v
                .get("watch")
                .and_then(|w| w.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_str().map(std::path::PathBuf::from)).collect())
                .unwrap_or_default(),
        })
    }
}
