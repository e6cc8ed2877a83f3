//! `providers`: what the profile loads, and whether each provider answers.

use std::process::ExitCode;

use clap::Args;
use keyhost::Keyhost;
use keyhost::config::Profile;
use serde_json::json;

#[derive(Args, Debug)]
pub struct ProvidersArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl ProvidersArgs {
    pub async fn run(&self, profile: &Profile) -> anyhow::Result<ExitCode> {
        let keyhost = Keyhost::open(profile)?;
        let mut rows = Vec::new();
        let mut all_healthy = true;
        for provider in keyhost.providers() {
            let settings = &profile.providers[provider.name()];
            let role = if provider.name() == profile.encrypt {
                "encrypt"
            } else {
                "decrypt-only"
            };
            let health = provider.describe().await;
            all_healthy &= health.is_ok();
            rows.push(match health {
                Ok(d) => json!({
                    "name": provider.name(),
                    "role": role,
                    "component": settings.component.display().to_string(),
                    "sha256": provider.component_sha256(),
                    "instances": format!("{:?}", provider.instance_policy()).to_lowercase(),
                    "healthy": true,
                    "version": d.version,
                    "key_id": d.key_id,
                    "generate_data_key": d.generate_data_key,
                    "re_encrypt": d.re_encrypt,
                }),
                Err(e) => json!({
                    "name": provider.name(),
                    "role": role,
                    "component": settings.component.display().to_string(),
                    "sha256": provider.component_sha256(),
                    "instances": format!("{:?}", provider.instance_policy()).to_lowercase(),
                    "healthy": false,
                    "error": e.to_string(),
                }),
            });
        }
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({ "profile": profile.name, "providers": rows })
                )?
            );
        } else {
            println!("profile {}", profile.name);
            for row in &rows {
                println!(
                    "{:<12} {:<13} {}  sha256:{}",
                    row["name"].as_str().unwrap_or_default(),
                    row["role"].as_str().unwrap_or_default(),
                    if row["healthy"] == true {
                        "healthy  "
                    } else {
                        "UNHEALTHY"
                    },
                    &row["sha256"].as_str().unwrap_or_default()[..16],
                );
                match row.get("key_id") {
                    Some(key_id) => println!(
                        "             key id {}",
                        key_id.as_str().unwrap_or_default()
                    ),
                    None => println!(
                        "             error: {}",
                        row["error"].as_str().unwrap_or_default()
                    ),
                }
            }
        }
        Ok(if all_healthy {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
