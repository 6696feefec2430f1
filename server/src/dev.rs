//! `dialkv dev`: a local cluster of real replica processes, for trying dialkv out.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use dialkv_proto::v1::cluster_client::ClusterClient;
use dialkv_proto::v1::ClusterStatusRequest;
use tokio::process::{Child, Command};

/// The flags of `dialkv dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// How many replicas to run.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Where each replica keeps its data (`DIR/1`, `DIR/2`, ...) and its log (`DIR/N.log`).
    #[arg(long, default_value = "./dialkv-data")]
    data_dir: PathBuf,
    /// The gRPC port of replica 1; replica N listens on PORT + N - 1, and its admin HTTP port
    /// (metrics) on PORT + 100 + N - 1.
    #[arg(long, default_value_t = 7001)]
    port: u16,
}

/// Starts the replicas, waits for a primary, prints the endpoints, and stops every replica
/// when `shutdown` resolves (or when one of them exits).
pub async fn run(
    args: DevArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 9 {
        bail!("--nodes must be 1 to 9, not {}", args.nodes);
    }
    let exe = std::env::current_exe().context("locating the dialkv binary")?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let addr = |i: u16| format!("127.0.0.1:{}", args.port + i - 1);
    let peers: Vec<String> = (1..=args.nodes)
        .map(|i| format!("{i}={}", addr(i)))
        .collect();
    let peers = peers.join(",");
    let mut children: Vec<(u16, Child)> = Vec::new();
    for i in 1..=args.nodes {
        let log_path = args.data_dir.join(format!("{i}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("serve")
            .args(["--id", &i.to_string(), "--listen", &addr(i)])
            .args(["--admin", &format!("127.0.0.1:{}", args.port + 100 + i - 1)])
            .arg("--data-dir")
            .arg(args.data_dir.join(i.to_string()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if args.nodes > 1 {
            cmd.args(["--peers", &peers]);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting replica {i}"))?;
        children.push((i, child));
    }
    let endpoints: Vec<String> = (1..=args.nodes).map(addr).collect();
    let leader = wait_for_leader(&endpoints, Duration::from_secs(60)).await;
    match leader {
        Some(id) => println!(
            "dialkv dev: {} replicas up, replica {id} is the primary",
            args.nodes
        ),
        None => eprintln!(
            "dialkv dev: no primary elected yet; see the logs in {}",
            args.data_dir.display()
        ),
    }
    println!("endpoints: {}", endpoints.join(","));
    println!(
        "try:       dialctl --endpoints {} put greeting hello",
        endpoints.join(",")
    );
    println!(
        "logs:      {}/N.log    stop: Ctrl-C",
        args.data_dir.display()
    );

    tokio::pin!(shutdown);
    let exited = async {
        loop {
            for (i, child) in children.iter_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return (*i, status);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        _ = &mut shutdown => println!("dialkv dev: stopping"),
        (i, status) = exited => eprintln!("dialkv dev: replica {i} exited ({status}); stopping the others"),
    }
    for (_, child) in &children {
        if let Some(pid) = child.id() {
            // SIGTERM: each replica finishes its in-flight requests and closes its storage.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
    for (i, child) in children.iter_mut() {
        match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("dialkv dev: replica {i} did not stop in 15 s; killing it");
                let _ = child.kill().await;
            }
        }
    }
    Ok(())
}

/// Polls the replicas' cluster status until one reports a primary.
async fn wait_for_leader(endpoints: &[String], deadline: Duration) -> Option<u64> {
    let until = tokio::time::Instant::now() + deadline;
    while tokio::time::Instant::now() < until {
        for e in endpoints {
            let Ok(mut client) = ClusterClient::connect(format!("http://{e}")).await else {
                continue;
            };
            if let Ok(status) = client.cluster_status(ClusterStatusRequest {}).await {
                let leader = status.into_inner().leader_id;
                if leader != 0 {
                    return Some(leader);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}
