//! What a completed sync survives on the server this handle talks to, in
//! one sentence, from its persistence settings (for `shelf info` and the
//! backend's [`stats`](shelf_core::KvBackend::stats)).

use std::collections::HashMap;

/// The settings that decide it, as `CONFIG GET` gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Persistence {
    /// `appendonly`: `yes` or `no`.
    pub(crate) appendonly: String,
    /// `appendfsync`: `always`, `everysec` or `no`.
    pub(crate) appendfsync: String,
    /// `save`: RDB snapshot rules (`3600 1 300 100`), empty when off.
    pub(crate) save: String,
}

impl Persistence {
    /// From the pairs of `CONFIG GET appendonly appendfsync save`.
    pub(crate) fn from_config(pairs: &HashMap<String, String>) -> Self {
        let get = |k: &str| pairs.get(k).cloned().unwrap_or_else(|| "unknown".to_owned());
        Persistence { appendonly: get("appendonly"), appendfsync: get("appendfsync"), save: get("save") }
    }

    /// The sentence: the rule, then this server's settings and what they
    /// mean, and the replicas a sync waits for.
    pub(crate) fn describe(&self, host: &str, replicas: u32) -> String {
        let this = match (self.appendonly.as_str(), self.appendfsync.as_str()) {
            ("yes", "always") => {
                "appendonly yes, appendfsync always: a synced write is on the server's disk before the sync returns and survives a restart, a crash or a power loss".to_owned()
            }
            ("yes", "everysec") => {
                "appendonly yes, appendfsync everysec: a synced write is in the AOF file when the sync returns, so a crash of the server process normally loses nothing, but a crash or power loss of its machine may lose up to about a second of synced writes".to_owned()
            }
            ("yes", "no") => {
                "appendonly yes, appendfsync no: a synced write is in the AOF file but the operating system decides when it reaches the disk, so a crash or power loss of the machine may lose tens of seconds of synced writes".to_owned()
            }
            ("no", _) if self.save.trim().is_empty() => {
                "appendonly no, save \"\" (no RDB snapshots): a synced write is in the server's memory only, and a restart or crash of the server loses every write".to_owned()
            }
            ("no", _) => format!(
                "appendonly no: a synced write is in the server's memory only; a restart or crash keeps only what the last RDB snapshot holds (save \"{}\": seconds and changes between snapshots), a clean shutdown saves one",
                self.save
            ),
            (aof, fsync) => {
                format!("appendonly {aof}, appendfsync {fsync}: settings this backend does not know how to judge")
            }
        };
        let mut out = format!(
            "synced writes survive a server restart only with appendonly yes and appendfsync always; this server ({host}): {this}"
        );
        if replicas > 0 {
            out.push_str(&format!(
                "; each sync also waits (WAIT) until {replicas} replica(s) have its writes, so they survive the loss of this server when a replica takes over"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(aof: &str, fsync: &str, save: &str) -> Persistence {
        Persistence { appendonly: aof.into(), appendfsync: fsync.into(), save: save.into() }
    }

    #[test]
    fn each_setting_is_judged() {
        let always = p("yes", "always", "").describe("h:1", 0);
        assert!(always.contains("power loss") && always.contains("h:1"), "{always}");
        assert!(p("yes", "everysec", "").describe("h", 0).contains("about a second"));
        assert!(p("yes", "no", "").describe("h", 0).contains("operating system"));
        let off = p("no", "everysec", "").describe("h", 0);
        assert!(off.contains("appendonly no") && off.contains("no RDB snapshots"), "{off}");
        assert!(p("no", "everysec", "3600 1").describe("h", 0).contains("save \"3600 1\""));
        assert!(p("yes", "always", "").describe("h", 2).contains("2 replica(s)"));
        let from = Persistence::from_config(&HashMap::from([("appendonly".to_owned(), "no".to_owned())]));
        assert_eq!(from.appendfsync, "unknown");
    }
}
