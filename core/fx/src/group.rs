//! Parameter groups: the unit of freezing (Lock-Release), of learning rates and of the EMA's
//! bookkeeping. The experiment (`config`) sets rates per group, the plan (`schedule`) says which
//! groups train in an epoch, and `model` names every variable after its group.

use serde::{Deserialize, Serialize};

/// Parameter groups: the unit of freezing and of learning rates. Variable names start with the
/// group's name (`backbone.…`, `cls_head.<dataset>.…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Backbone,
    ClsHead,
    LocEncoder,
    LocDecoder,
    SegDecoder,
    SegHead,
}

impl Group {
    pub const ALL: [Group; 6] =
        [Group::Backbone, Group::ClsHead, Group::LocEncoder, Group::LocDecoder, Group::SegDecoder, Group::SegHead];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Backbone => "backbone",
            Group::ClsHead => "cls_head",
            Group::LocEncoder => "loc_encoder",
            Group::LocDecoder => "loc_decoder",
            Group::SegDecoder => "seg_decoder",
            Group::SegHead => "seg_head",
        }
    }

    /// Whether this group trains in an epoch with these flags (a group off the task's path does
    /// not). The names are plan.json's, so the record's own lookup serves.
    pub fn trains_in(self, t: &fx_run::Trainable) -> bool {
        t.get(self.as_str()) == Some(true)
    }

    /// The group of a variable name, and the dataset it belongs to for per-dataset heads.
    pub fn of(var: &str) -> Option<(Group, Option<&str>)> {
        let (head, rest) = var.split_once('.')?;
        let group = Group::ALL.into_iter().find(|g| g.as_str() == head)?;
        let dataset = match group {
            Group::ClsHead | Group::LocDecoder | Group::SegHead => rest.split_once('.').map(|(d, _)| d),
            _ => None,
        };
        Some((group, dataset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_of_variable_names() {
        assert_eq!(Group::of("backbone.layers.0.blocks.0.attn.qkv.weight"), Some((Group::Backbone, None)));
        assert_eq!(Group::of("cls_head.phantom-cxp.weight"), Some((Group::ClsHead, Some("phantom-cxp"))));
        assert_eq!(Group::of("nonsense.x"), None);
    }
}
