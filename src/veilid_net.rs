//! A real, private Veilid network of N nodes in one process, for examples,
//! integration tests and measurements (veilid-core 0.5.8).
//!
//! Behind its own feature, `veilid-net` (which implies `veilid`): a test
//! harness, not part of the crate's default public API.
//!
//! Veilid's DHT only runs in the PublicInternet routing domain, which only
//! accepts global addresses: nodes on 127.0.0.1 never attach. So the nodes
//! run inside the sealed network namespace made by `scripts/netns.sh` (fake
//! global addresses 11.0.0.I/32 and 2600::I on a veth pair with no link to
//! any real interface, `nodeI` in a private `/etc/hosts`).
//! [`LocalNetwork::start`] refuses to run anywhere else, because outside the
//! namespace those addresses are real Internet addresses.
//!
//! Node configuration (`docs/local-network.md` in the repository says why
//! each item is needed): per node a distinct namespace and store
//! directories, insecure protected store, UPnP off, address-change detection
//! off, a network key password (keeps the network private), listening on
//! `nodeI:5150` for UDP, TCP and WS (dual stack); no default bootstrap
//! hosts; `bootstrap_records` pointing at node 0, whose identity is fixed
//! (derived from the network name) and which serves direct bootstrap.
//! At least 5 nodes are needed (Veilid wants 4 bootstrap peers); 6 is the
//! default.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use contact_invite::veilid_net::{LocalNetwork, LocalNetworkOptions};
//! if !LocalNetwork::namespace_ready() {
//!     eprintln!("run me under scripts/netns.sh");
//!     return Ok(());
//! }
//! let net = LocalNetwork::start(LocalNetworkOptions::default()).await?;
//! let dht_a = net.dht(0)?;
//! let dht_b = net.dht(1)?;
//! // ... use them through contact_invite::dht::Dht ...
//! println!("{}", net.report());
//! net.shutdown().await;
//! # Ok(()) }
//! ```

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs as _, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use veilid_core as vc;

use crate::crypto::SigningKey;
use crate::dht::veilid::{VeilidDht, VeilidDhtError, VeilidUpdateSink};

/// Fewest nodes that attach: Veilid needs 4 bootstrap peers besides itself.
pub const MIN_NODES: usize = 5;
/// Default node count.
pub const DEFAULT_NODES: usize = 6;
/// The port every node listens on (UDP, TCP and WS), on its own address.
pub const NODE_PORT: u16 = 5150;

/// How to start a [`LocalNetwork`].
#[derive(Clone, Debug)]
pub struct LocalNetworkOptions {
    /// Number of nodes (at least [`MIN_NODES`]; the namespace must have as
    /// many addresses: `VEILID_NODES` for `scripts/netns.sh`).
    pub nodes: usize,
    /// Where node stores go (`<base>/nodeI`). `None`: a fresh directory under
    /// the system temp dir, removed at shutdown.
    pub base_dir: Option<PathBuf>,
    /// Wipe the node stores at startup (a throwaway network). `false` keeps
    /// records and table stores from an earlier run in the same `base_dir`.
    pub fresh_stores: bool,
    /// Network name: the network key password and the seed of node 0's
    /// identity. Networks with different names do not talk to each other.
    pub network_name: String,
    /// How long to wait for every node to attach.
    pub attach_timeout: Duration,
    /// Index of the first node this process runs: the nodes are
    /// `first_node .. first_node + nodes`, each on its own address
    /// (`nodeI`). 0 (the default) includes the bootstrap node, node 0; a
    /// larger value joins a network whose node 0 runs elsewhere (another
    /// process in the same namespace, e.g. a chat app's own node), and then
    /// one node is enough.
    pub first_node: usize,
}

impl Default for LocalNetworkOptions {
    fn default() -> Self {
        Self {
            nodes: DEFAULT_NODES,
            base_dir: None,
            fresh_stores: true,
            network_name: "contact-invite-local".to_owned(),
            attach_timeout: Duration::from_secs(90),
            first_node: 0,
        }
    }
}

/// Starting or using a [`LocalNetwork`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalNetworkError {
    /// Not inside the sealed namespace (or it has too few addresses).
    #[error(
        "not inside the sealed Veilid test namespace ({detail}); run under scripts/netns.sh \
         (e.g. `VEILID_NODES={nodes} scripts/netns-cargo.sh build --features veilid-net --example veilid_smoke`)"
    )]
    NamespaceNotReady {
        /// Nodes asked for.
        nodes: usize,
        /// What is missing.
        detail: String,
    },
    /// Fewer than [`MIN_NODES`] nodes asked for.
    #[error("{0} nodes asked for; a private Veilid network needs at least {MIN_NODES}")]
    TooFewNodes(usize),
    /// A store directory could not be created.
    #[error("store directory {path}: {message}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// `api_startup` failed for a node.
    #[error("node {node}: veilid startup failed: {message}")]
    Startup {
        /// Node index.
        node: usize,
        /// Veilid's error.
        message: String,
    },
    /// A node did not attach in time.
    #[error(
        "node {node} did not attach within {timeout:?} (last state: {state}); the nodes need the \
         fake global addresses of scripts/netns.sh (run under it) and at least {MIN_NODES} nodes"
    )]
    AttachTimeout {
        /// Node index.
        node: usize,
        /// The timeout.
        timeout: Duration,
        /// The node's last attachment state.
        state: String,
    },
    /// No node with this index.
    #[error("no node {0}")]
    NoSuchNode(usize),
    /// A Veilid API call failed.
    #[error("node {node}: {message}")]
    Api {
        /// Node index.
        node: usize,
        /// Veilid's error.
        message: String,
    },
    /// Building a [`VeilidDht`] failed.
    #[error(transparent)]
    Dht(#[from] VeilidDhtError),
}

/// Timings and memory of one node's start.
#[derive(Clone, Debug)]
pub struct NodeReport {
    /// Node index.
    pub index: usize,
    /// Host name in the namespace (`nodeI`).
    pub host: String,
    /// `api_startup` duration.
    pub startup: Duration,
    /// From `attach()` until attached with PublicInternet ready.
    pub attach: Duration,
    /// Process VmRSS (KiB) right after this node's `api_startup`.
    pub rss_after_startup_kib: Option<u64>,
}

/// Timings and memory of a [`LocalNetwork`] start.
#[derive(Clone, Debug)]
pub struct LocalNetworkReport {
    /// Per node.
    pub nodes: Vec<NodeReport>,
    /// Process VmRSS (KiB) before the first node started.
    pub rss_before_kib: Option<u64>,
    /// Process VmRSS (KiB) once all nodes were attached.
    pub rss_after_attach_kib: Option<u64>,
    /// Whole start, startup and attach of all nodes.
    pub total: Duration,
}

impl LocalNetworkReport {
    /// Memory the nodes added to the process, per node (KiB), once attached.
    pub fn rss_per_node_kib(&self) -> Option<u64> {
        let n = u64::try_from(self.nodes.len()).ok().filter(|n| *n > 0)?;
        Some(self.rss_after_attach_kib?.saturating_sub(self.rss_before_kib?) / n)
    }
}

impl fmt::Display for LocalNetworkReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "node  startup_ms  attach_ms  rss_after_startup_MiB")?;
        for n in &self.nodes {
            writeln!(
                f,
                "{:<5} {:>10.0} {:>10.0} {:>22}",
                n.host,
                n.startup.as_secs_f64() * 1000.0,
                n.attach.as_secs_f64() * 1000.0,
                n.rss_after_startup_kib.map_or("?".to_owned(), |k| format!("{:.1}", kib_to_mib(k))),
            )?;
        }
        let mib = |v: Option<u64>| v.map_or("?".to_owned(), |k| format!("{:.1} MiB", kib_to_mib(k)));
        writeln!(f, "total start: {:.2} s", self.total.as_secs_f64())?;
        writeln!(
            f,
            "VmRSS before: {}, after attach: {}, per node: {}",
            mib(self.rss_before_kib),
            mib(self.rss_after_attach_kib),
            mib(self.rss_per_node_kib())
        )
    }
}

fn kib_to_mib(k: u64) -> f64 {
    // Precision loss is irrelevant for a report.
    #[allow(clippy::cast_precision_loss)]
    let k = k as f64;
    k / 1024.0
}

/// The process's resident set size (VmRSS, KiB) from `/proc/self/status`;
/// `None` where that file does not exist.
pub fn vm_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Node `i`'s IPv4 address in the namespace (11.0.0.(i+1)).
pub fn node_ipv4(i: usize) -> Option<Ipv4Addr> {
    let last = u8::try_from(i + 1).ok().filter(|b| *b < 254)?;
    Some(Ipv4Addr::new(11, 0, 0, last))
}

/// Node `i`'s IPv6 address in the namespace (2600::(i+1)).
pub fn node_ipv6(i: usize) -> Option<Ipv6Addr> {
    let last = u16::try_from(i + 1).ok()?;
    Some(Ipv6Addr::new(0x2600, 0, 0, 0, 0, 0, 0, last))
}

struct Node {
    api: vc::VeilidAPI,
    updates: VeilidUpdateSink,
}

/// N Veilid nodes in this process, attached to each other inside the
/// sealed namespace. Call [`LocalNetwork::shutdown`] when done.
pub struct LocalNetwork {
    /// Node `first + k` at position `k`; `None` once stopped.
    nodes: Vec<Option<Node>>,
    first: usize,
    opts: LocalNetworkOptions,
    bootstrap_records: Vec<String>,
    base_dir: PathBuf,
    remove_dir: bool,
    report: LocalNetworkReport,
}

impl fmt::Debug for LocalNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalNetwork")
            .field("first", &self.first)
            .field("nodes", &self.nodes.len())
            .field("base_dir", &self.base_dir)
            .finish()
    }
}

impl LocalNetwork {
    /// Whether this process runs inside the sealed namespace with addresses
    /// for [`DEFAULT_NODES`] nodes. Cheap; use it to skip or fail early with
    /// a clear message.
    pub fn namespace_ready() -> bool {
        Self::check_namespace(DEFAULT_NODES).is_ok()
    }

    /// Checks the namespace for `nodes` nodes: only `lo`, `vp0` and `vp1`
    /// exist (nothing can leave the machine), every node's IPv4 and IPv6
    /// address is local, and `nodeI` resolves to it. The error says what is
    /// missing.
    pub fn check_namespace(nodes: usize) -> Result<(), LocalNetworkError> {
        let fail = |detail: String| Err(LocalNetworkError::NamespaceNotReady { nodes, detail });
        // /proc/self/net is per network namespace (unlike /sys/class/net,
        // which shows the namespace that mounted sysfs).
        let Ok(dev) = std::fs::read_to_string("/proc/self/net/dev") else {
            return fail("cannot read /proc/self/net/dev".to_owned());
        };
        let foreign: Vec<&str> = dev
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next().map(str::trim))
            .filter(|name| !matches!(*name, "lo" | "vp0" | "vp1"))
            .collect();
        if !foreign.is_empty() {
            return fail(format!("interfaces other than lo/vp0/vp1 present: {}", foreign.join(", ")));
        }
        for i in 0..nodes {
            let (Some(v4), Some(v6)) = (node_ipv4(i), node_ipv6(i)) else {
                return fail(format!("node {i} has no address"));
            };
            for ip in [IpAddr::V4(v4), IpAddr::V6(v6)] {
                if UdpSocket::bind(SocketAddr::new(ip, 0)).is_err() {
                    return fail(format!("address {ip} of node{i} is not local"));
                }
            }
            let resolved: Vec<IpAddr> = match (format!("node{i}"), NODE_PORT).to_socket_addrs() {
                Ok(it) => it.map(|a| a.ip()).collect(),
                Err(_) => return fail(format!("node{i} does not resolve (namespace /etc/hosts)")),
            };
            if !resolved.contains(&IpAddr::V4(v4)) || !resolved.contains(&IpAddr::V6(v6)) {
                return fail(format!("node{i} does not resolve to {v4} and {v6}"));
            }
        }
        Ok(())
    }

    /// Starts `opts.nodes` nodes (indexes `opts.first_node ..`), attaches
    /// them and waits until every one is attached with PublicInternet ready
    /// (or `opts.attach_timeout`).
    ///
    /// A network that includes node 0 needs at least [`MIN_NODES`] nodes; a
    /// process joining one that runs elsewhere needs one.
    ///
    /// Refuses to run outside the sealed namespace. On failure every node
    /// started so far is shut down.
    pub async fn start(opts: LocalNetworkOptions) -> Result<Self, LocalNetworkError> {
        if opts.nodes == 0 || (opts.first_node == 0 && opts.nodes < MIN_NODES) {
            return Err(LocalNetworkError::TooFewNodes(opts.nodes));
        }
        let last = opts.first_node.checked_add(opts.nodes).ok_or(LocalNetworkError::NoSuchNode(opts.first_node))?;
        Self::check_namespace(last)?;

        let (base_dir, remove_dir) = match &opts.base_dir {
            Some(d) => (d.clone(), false),
            None => (unique_temp_dir(), true),
        };
        std::fs::create_dir_all(&base_dir)
            .map_err(|e| LocalNetworkError::Io { path: base_dir.clone(), message: e.to_string() })?;

        let mut net = Self {
            nodes: Vec::with_capacity(opts.nodes),
            first: opts.first_node,
            bootstrap_records: Vec::new(),
            opts: opts.clone(),
            base_dir,
            remove_dir,
            report: LocalNetworkReport {
                nodes: Vec::with_capacity(opts.nodes),
                rss_before_kib: vm_rss_kib(),
                rss_after_attach_kib: None,
                total: Duration::ZERO,
            },
        };
        match net.start_nodes().await {
            Ok(()) => Ok(net),
            Err(e) => {
                net.shutdown().await;
                Err(e)
            }
        }
    }

    async fn start_nodes(&mut self) -> Result<(), LocalNetworkError> {
        let t0 = Instant::now();
        let boot = boot_identity(&self.opts.network_name);
        let boot_pk = vc::PublicKey::new(vc::CRYPTO_KIND_VLD0, vc::BarePublicKey::new(boot.public().as_bytes()));
        let (Some(boot_v4), Some(boot_v6)) = (node_ipv4(0), node_ipv6(0)) else {
            return Err(LocalNetworkError::NoSuchNode(0));
        };
        self.bootstrap_records = vec![
            format!("0|ENV0|{boot_pk}|{boot_v4}|U{NODE_PORT},T{NODE_PORT},W{NODE_PORT}"),
            format!("0|ENV0|{boot_pk}|[{boot_v6}]|U{NODE_PORT},T{NODE_PORT},W{NODE_PORT}"),
        ];

        for i in self.first..self.first + self.opts.nodes {
            let (node, report) = self.boot_node(i, self.opts.fresh_stores).await?;
            self.nodes.push(Some(node));
            self.report.nodes.push(report);
        }

        let attaches = self.nodes.iter().flatten().enumerate().map(|(k, node)| {
            let timeout = self.opts.attach_timeout;
            attach(node, self.first + k, timeout)
        });
        let results = futures_util::future::join_all(attaches).await;
        for (k, r) in results.into_iter().enumerate() {
            let attach = r?;
            tracing::info!(node = self.first + k, attach_ms = attach.as_millis(), "veilid node attached");
            if let Some(n) = self.report.nodes.get_mut(k) {
                n.attach = attach;
            }
        }
        self.report.rss_after_attach_kib = vm_rss_kib();
        self.report.total = t0.elapsed();
        Ok(())
    }

    /// `api_startup` of node `i` (not attached yet).
    async fn boot_node(&self, i: usize, fresh: bool) -> Result<(Node, NodeReport), LocalNetworkError> {
        let dir = self.base_dir.join(format!("node{i}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| LocalNetworkError::Io { path: dir.clone(), message: e.to_string() })?;
        let boot = (i == 0).then(|| boot_identity(&self.opts.network_name));
        let config = node_config(i, &dir, &self.opts, fresh, &self.bootstrap_records, boot.as_ref());
        let updates = VeilidUpdateSink::new();
        let started = Instant::now();
        let api = vc::api_startup(updates.callback(), config)
            .await
            .map_err(|e| LocalNetworkError::Startup { node: i, message: e.to_string() })?;
        let startup = started.elapsed();
        tracing::debug!(node = i, startup_ms = startup.as_millis(), "veilid node started");
        let report = NodeReport {
            index: i,
            host: format!("node{i}"),
            startup,
            attach: Duration::ZERO,
            rss_after_startup_kib: vm_rss_kib(),
        };
        Ok((Node { api, updates }, report))
    }

    /// Stops node `i` as a crash or a closed laptop would take it off the
    /// network: its API shuts down, its store stays on disk. Every
    /// [`VeilidDht`] made from it stops working. [`LocalNetwork::restart_node`]
    /// brings it back.
    pub async fn stop_node(&mut self, i: usize) -> Result<(), LocalNetworkError> {
        let slot =
            i.checked_sub(self.first).and_then(|k| self.nodes.get_mut(k)).ok_or(LocalNetworkError::NoSuchNode(i))?;
        let node = slot.take().ok_or(LocalNetworkError::NoSuchNode(i))?;
        node.api.shutdown().await;
        tracing::info!(node = i, "veilid node stopped");
        Ok(())
    }

    /// Starts node `i` again from its store (the same identity, records and
    /// table store) and waits until it is attached. Returns the attach time.
    pub async fn restart_node(&mut self, i: usize) -> Result<Duration, LocalNetworkError> {
        let k = i.checked_sub(self.first).filter(|k| *k < self.nodes.len()).ok_or(LocalNetworkError::NoSuchNode(i))?;
        if self.nodes.get(k).is_some_and(Option::is_some) {
            return Ok(Duration::ZERO);
        }
        let (node, _) = self.boot_node(i, false).await?;
        let took = match attach(&node, i, self.opts.attach_timeout).await {
            Ok(t) => t,
            Err(e) => {
                node.api.shutdown().await;
                return Err(e);
            }
        };
        if let Some(slot) = self.nodes.get_mut(k) {
            *slot = Some(node);
        }
        tracing::info!(node = i, attach_ms = took.as_millis(), "veilid node restarted");
        Ok(took)
    }

    /// Number of nodes this process runs (stopped ones included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes (only after a failed start).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The indexes of this process's nodes (`first_node ..`).
    pub fn indexes(&self) -> core::ops::Range<usize> {
        self.first..self.first + self.nodes.len()
    }

    fn node(&self, i: usize) -> Result<&Node, LocalNetworkError> {
        i.checked_sub(self.first)
            .and_then(|k| self.nodes.get(k))
            .and_then(Option::as_ref)
            .ok_or(LocalNetworkError::NoSuchNode(i))
    }

    /// Node `i`'s API handle.
    pub fn api(&self, i: usize) -> Result<&vc::VeilidAPI, LocalNetworkError> {
        Ok(&self.node(i)?.api)
    }

    /// A routing context on node `i` with default safety routes.
    pub fn routing_context(&self, i: usize) -> Result<vc::RoutingContext, LocalNetworkError> {
        let api_err = |e: vc::VeilidAPIError| LocalNetworkError::Api { node: i, message: e.to_string() };
        self.node(i)?.api.routing_context().and_then(vc::RoutingContext::with_default_safety).map_err(api_err)
    }

    /// A [`VeilidDht`] on node `i`, fed with node `i`'s value changes.
    pub fn dht(&self, i: usize) -> Result<VeilidDht, LocalNetworkError> {
        let node = self.node(i)?;
        Ok(VeilidDht::with_updates(self.routing_context(i)?, &node.updates)?)
    }

    /// Node `i`'s update sink (where its `api_startup` callback goes).
    pub fn update_sink(&self, i: usize) -> Result<&VeilidUpdateSink, LocalNetworkError> {
        Ok(&self.node(i)?.updates)
    }

    /// Attach time of each node.
    pub fn attach_times(&self) -> Vec<Duration> {
        self.report.nodes.iter().map(|n| n.attach).collect()
    }

    /// Start timings and memory.
    pub fn report(&self) -> &LocalNetworkReport {
        &self.report
    }

    /// Where the node stores are.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// Shuts every node down (`VeilidAPI::shutdown`, concurrently) and
    /// removes the store directory if it was a temporary one.
    pub async fn shutdown(mut self) {
        let nodes = std::mem::take(&mut self.nodes);
        let started = Instant::now();
        futures_util::future::join_all(nodes.into_iter().flatten().map(|n| n.api.shutdown())).await;
        tracing::debug!(shutdown_ms = started.elapsed().as_millis(), "veilid nodes shut down");
        if self.remove_dir
            && let Err(e) = std::fs::remove_dir_all(&self.base_dir)
        {
            tracing::warn!("removing {}: {e}", self.base_dir.display());
        }
    }
}

impl Drop for LocalNetwork {
    fn drop(&mut self) {
        let running = self.nodes.iter().flatten().count();
        if running > 0 {
            tracing::warn!("LocalNetwork dropped without shutdown(); {running} nodes keep running");
        }
    }
}

/// Attaches `node` (index `i`) and waits until PublicInternet is ready.
async fn attach(node: &Node, i: usize, timeout: Duration) -> Result<Duration, LocalNetworkError> {
    let started = Instant::now();
    node.api.attach().await.map_err(|e| LocalNetworkError::Api { node: i, message: format!("attach: {e}") })?;
    match node.api.wait_for_attachment_condition(None, Some(timeout)).await {
        Ok(_) => Ok(started.elapsed()),
        Err(e) => {
            let state = match node.api.get_state().await {
                Ok(s) => format!(
                    "{:?}, public_internet_ready={}, peers={}",
                    s.attachment.state,
                    s.attachment.public_internet_ready,
                    s.network.peers.len()
                ),
                Err(_) => e.to_string(),
            };
            Err(LocalNetworkError::AttachTimeout { node: i, timeout, state })
        }
    }
}

/// Node 0's fixed identity, derived from the network name.
fn boot_identity(network_name: &str) -> SigningKey {
    let mut seed = blake3::derive_key("contact-invite veilid_net boot node identity v1", network_name.as_bytes());
    SigningKey::from_seed(&mut seed)
}

fn unique_temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!("contact-invite-veilid-{}-{nanos}", std::process::id()))
}

fn node_config(
    i: usize,
    dir: &Path,
    opts: &LocalNetworkOptions,
    fresh: bool,
    bootstrap_records: &[String],
    identity: Option<&SigningKey>,
) -> vc::VeilidConfig {
    let dir_s = dir.to_string_lossy();
    let mut c = vc::VeilidConfig::new("contact-invite-localnet", "contact-invite", "org", Some(&dir_s), Some(&dir_s));
    c.namespace = format!("node{i}");

    c.protected_store.always_use_insecure_storage = true;
    c.protected_store.allow_insecure_fallback = true;
    c.protected_store.delete = fresh;
    c.table_store.delete = fresh;
    c.block_store.delete = fresh;

    let net = &mut c.network;
    net.upnp = false;
    net.detect_address_changes = Some(false);
    net.network_key_password = Some(opts.network_name.clone());
    let listen = format!("node{i}:{NODE_PORT}");
    net.protocol.udp.enabled = true;
    net.protocol.udp.listen_address.clone_from(&listen);
    net.protocol.tcp.connect = true;
    net.protocol.tcp.listen = true;
    net.protocol.tcp.listen_address.clone_from(&listen);
    net.protocol.ws.connect = true;
    net.protocol.ws.listen = true;
    net.protocol.ws.listen_address = listen;

    let rt = &mut net.routing_table;
    // No default bootstrap hosts: nothing may be looked up outside.
    rt.bootstrap = Vec::new();
    rt.bootstrap_keys = Vec::new();
    rt.bootstrap_records = bootstrap_records.to_vec();
    if let Some(id) = identity {
        let seed = id.expose_seed();
        rt.public_keys.add(vc::PublicKey::new(vc::CRYPTO_KIND_VLD0, vc::BarePublicKey::new(id.public().as_bytes())));
        rt.secret_keys.add(vc::SecretKey::new(vc::CRYPTO_KIND_VLD0, vc::BareSecretKey::new(seed.as_slice())));
        rt.serve_direct_bootstrap = true;
    }
    c
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn addresses_match_netns_script() {
        assert_eq!(node_ipv4(0), Some(Ipv4Addr::new(11, 0, 0, 1)));
        assert_eq!(node_ipv4(5), Some(Ipv4Addr::new(11, 0, 0, 6)));
        assert_eq!(node_ipv6(9).map(|a| a.to_string()), Some("2600::a".to_owned()));
        assert_eq!(node_ipv4(300), None);
    }

    #[test]
    fn rss_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(vm_rss_kib().unwrap_or(0) > 0);
        }
    }

    #[test]
    fn boot_identity_is_stable() {
        assert_eq!(boot_identity("x").public(), boot_identity("x").public());
        assert_ne!(boot_identity("x").public(), boot_identity("y").public());
    }

    #[test]
    fn too_few_nodes_is_refused() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let opts = LocalNetworkOptions { nodes: 3, ..Default::default() };
        let r = rt.block_on(LocalNetwork::start(opts));
        assert!(matches!(r, Err(LocalNetworkError::TooFewNodes(3))));
    }

    #[test]
    fn outside_the_namespace_start_is_refused() {
        // Plain `cargo test` runs outside the namespace: the check must fail
        // (inside it, it passes; both are fine here).
        if LocalNetwork::check_namespace(DEFAULT_NODES).is_err() {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let r = rt.block_on(LocalNetwork::start(LocalNetworkOptions::default()));
            assert!(matches!(r, Err(LocalNetworkError::NamespaceNotReady { .. })));
        }
    }
}
