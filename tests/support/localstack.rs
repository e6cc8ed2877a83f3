//! A fresh, isolated LocalStack KMS for a test: a container when a Docker
//! engine answers, otherwise LocalStack's host runtime from the project's
//! venv on a free port with its own state directory. Stopped on drop.
//!
//! Each instance also gets its own 12-digit access key id, which LocalStack
//! takes as the account, so keys of different tests never meet.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyhost::infra::KmsTarget;

use crate::repo_root;

/// The image the fixture and docker-compose.yml pin (later tags need a token).
pub const IMAGE: &str = "localstack/localstack:4.14.0";

pub struct LocalStack {
    pub port: u16,
    pub access_key_id: String,
    process: Option<Child>,
    container: Option<String>,
    _state: Option<tempfile::TempDir>,
}

impl LocalStack {
    /// Starts an instance and waits until KMS answers.
    pub fn start() -> Self {
        let access_key_id = format!("{:012}", rand_u64() % 1_000_000_000_000);
        let mut instance = if docker_available() {
            Self::start_container(access_key_id)
        } else {
            Self::start_on_host(access_key_id)
        };
        instance.wait_until_ready(Duration::from_secs(180));
        instance
    }

    fn start_on_host(access_key_id: String) -> Self {
        let python = repo_root().join(".venv-localstack/bin/python");
        assert!(
            python.exists(),
            "{} is missing; run `make services-up` once to install LocalStack",
            python.display()
        );
        let port = free_port();
        let state = tempfile::Builder::new()
            .prefix("keyhost-localstack-")
            .tempdir()
            .unwrap();
        let log = std::fs::File::create(state.path().join("localstack.log")).unwrap();
        let process = Command::new(python)
            .arg(repo_root().join("infra/localstack/run.py"))
            .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("FILESYSTEM_ROOT", state.path())
            .env("LOCALSTACK_VOLUME_DIR", state.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting LocalStack");
        Self {
            port,
            access_key_id,
            process: Some(process),
            container: None,
            _state: Some(state),
        }
    }

    fn start_container(access_key_id: String) -> Self {
        let output = Command::new("docker")
            .args([
                "run",
                "-d",
                "--rm",
                "-e",
                "SERVICES=kms",
                "-p",
                "127.0.0.1::4566",
                IMAGE,
            ])
            .output()
            .expect("running docker");
        assert!(
            output.status.success(),
            "docker run failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let id = String::from_utf8(output.stdout).unwrap().trim().to_owned();
        let port = Command::new("docker")
            .args(["port", &id, "4566/tcp"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next()?.rsplit(':').next()?.parse().ok())
            .expect("reading the container's port");
        Self {
            port,
            access_key_id,
            process: None,
            container: Some(id),
            _state: None,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// For `aws-sdk-kms` and `keyhost::infra`, in this instance's account.
    pub fn target(&self) -> KmsTarget {
        KmsTarget::local(&self.endpoint(), &self.access_key_id)
    }

    /// A provider's `http` table for this instance, allowing `targets`.
    pub fn http_grant(&self, targets: &[&str]) -> String {
        let targets: Vec<String> = targets
            .iter()
            .map(|t| format!("\"TrentService.{t}\""))
            .collect();
        format!(
            "http = {{ endpoint = \"{}\", allow_plain_http = true, auth = \"aws-sigv4\", service = \"kms\", \
             region = \"us-east-1\", static_credentials = {{ access_key_id = \"{}\", secret_access_key = \"test\" }}, \
             allowed_targets = [{}], connect_timeout_ms = 1000, request_timeout_ms = 3000, max_retries = 1 }}",
            self.endpoint(),
            self.access_key_id,
            targets.join(", ")
        )
    }

    /// Freezes the emulator (SIGSTOP), as a hung service would look: requests
    /// connect but get no answer. Host mode only.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused emulator run again.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self
            .process
            .as_ref()
            .expect("pause and resume need a host-mode LocalStack");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn is_container(&self) -> bool {
        self.container.is_some()
    }

    /// Stops the instance now, as a crash or an outage would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(id) = self.container.take() {
            let _ = Command::new("docker").args(["rm", "-f", &id]).output();
        }
    }

    pub fn wait_until_ready(&mut self, timeout: Duration) {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(child) = &mut self.process
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "LocalStack exited with {status} before it was ready; see {:?}",
                    self.log_path()
                );
            }
            if health(self.port).is_some_and(|body| body.contains("\"kms\": \"running\"")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "LocalStack on port {} was not ready after {timeout:?}; see {:?}",
            self.port,
            self.log_path()
        );
    }

    fn log_path(&self) -> Option<PathBuf> {
        self._state
            .as_ref()
            .map(|s| s.path().join("localstack.log"))
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        self.stop();
    }
}

fn docker_available() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    u64::from_le_bytes(bytes)
}

/// The body of `GET /_localstack/health`, if anything answers.
fn health(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET /_localstack/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}
