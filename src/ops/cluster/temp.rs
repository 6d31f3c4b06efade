//! `TempCluster`: a throwaway cluster that stops and deletes itself.

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Cluster, Options, free_port};
use crate::ops::OpsResult as Result;

/// A cluster in a temporary folder, started, and stopped and deleted when
/// dropped: `scripts/test`'s server, or a second server in a test.
#[derive(Debug)]
pub struct TempCluster {
    cluster: Option<Cluster>,
}

impl TempCluster {
    /// Creates and starts a cluster in a fresh temporary folder. A port
    /// taken by a racing process between choosing and binding is retried.
    pub fn start(options: Options) -> Result<TempCluster> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "database-cluster-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let cluster = Cluster::create(&dir, &options)?;
        let mut temp = TempCluster {
            cluster: Some(cluster),
        };
        for attempt in 0.. {
            match temp.cluster_mut().start() {
                Ok(_) => break,
                Err(e) if attempt < 3 && options.port.is_none() => {
                    tracing::info!("temporary cluster did not start ({e}); trying another port");
                    let c = temp.cluster.as_mut().expect("present until drop");
                    c.record.port = free_port()?;
                    c.record.save(&c.state_dir)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(temp)
    }

    /// A streaming replica of `primary` (`pg_basebackup -R`), started. The
    /// primary needs `wal_level = replica` or higher (the default).
    pub fn replica_of(primary: &Cluster, mut options: Options) -> Result<TempCluster> {
        options.base_backup_of = Some(primary.url_of("postgres"));
        // The roles and their passwords came with the copy.
        options.secrets = primary.record().secrets.clone();
        Self::start(options)
    }

    fn cluster(&self) -> &Cluster {
        self.cluster.as_ref().expect("present until drop")
    }

    fn cluster_mut(&mut self) -> &mut Cluster {
        self.cluster.as_mut().expect("present until drop")
    }
}

impl Deref for TempCluster {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        self.cluster()
    }
}

impl std::ops::DerefMut for TempCluster {
    fn deref_mut(&mut self) -> &mut Cluster {
        self.cluster_mut()
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let Some(cluster) = self.cluster.take() else {
            return;
        };
        // Immediate: a throwaway cluster needs no clean checkpoint.
        let _ = cluster.stop_with("immediate");
        let dir = cluster.state_dir.clone();
        if let Err(e) = cluster.destroy() {
            eprintln!(
                "warning: could not remove temporary cluster {}: {e}",
                dir.display()
            );
        }
    }
}
