//! Prints the gRPC-framed body of one unary request to standard output, for
//! `h2load -d FILE` (`bench/compare.sh`): 1 byte compressed-flag (0), a
//! 4-byte big-endian length, then the protobuf bytes.
//!
//! ```text
//! encode_body check --workspace bench --subject u-0001 --action read --resource record:r-000001
//! encode_body check --requests small.requests.jsonl --line 3   # a line of `rolecall gen --requests-out`
//! encode_body batch --requests small.requests.jsonl --first 0 --count 64   # a CheckBatch of 64 lines
//! encode_body list --workspace bench --subject u-0001 --resource-type record --page-size 100
//! encode_body health                                           # empty HealthCheckRequest: 00 00 00 00 00
//! ```
//!
//! A description (and the `allowed` the requests file expects) goes to
//! standard error.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use prost::Message;
use rolecall::pb;

#[derive(Debug, Parser)]
#[command(about = "gRPC-framed request bodies for h2load")]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// rolecall.v1.Authz/Check
    Check {
        #[arg(long)]
        workspace: Option<String>,
        #[arg(long)]
        subject: Option<String>,
        #[arg(long)]
        action: Option<String>,
        /// "type:id"
        #[arg(long)]
        resource: Option<String>,
        /// Take the request from this JSONL file instead (`--line`).
        #[arg(long)]
        requests: Option<PathBuf>,
        /// 0-based line of --requests.
        #[arg(long, default_value_t = 0)]
        line: usize,
        #[arg(long)]
        explain: bool,
    },
    /// rolecall.v1.Authz/CheckBatch of consecutive lines of a requests file
    Batch {
        #[arg(long)]
        requests: PathBuf,
        /// 0-based line of the first check.
        #[arg(long, default_value_t = 0)]
        first: usize,
        #[arg(long, default_value_t = 64)]
        count: usize,
    },
    /// rolecall.v1.Authz/ListVisible
    List {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        resource_type: String,
        #[arg(long, default_value = "read")]
        action: String,
        #[arg(long, default_value_t = 100)]
        page_size: u32,
    },
    /// grpc.health.v1.Health/Check for the overall status ("")
    Health,
}

#[derive(Debug, serde::Deserialize)]
struct Line {
    workspace: String,
    subject: String,
    action: String,
    resource: String,
    allowed: Option<bool>,
}

fn frame(msg: &impl Message) -> Result<Vec<u8>> {
    let payload = msg.encode_to_vec();
    let len = u32::try_from(payload.len()).context("message over 4 GiB")?;
    let mut body = Vec::with_capacity(5 + payload.len());
    body.push(0);
    body.extend_from_slice(&len.to_be_bytes());
    body.extend_from_slice(&payload);
    Ok(body)
}

/// Line `line` (0-based) of a requests file's text.
fn parse_line(text: &str, path: &Path, line: usize) -> Result<Line> {
    let raw = text
        .lines()
        .nth(line)
        .ok_or_else(|| anyhow!("{} has no line {line}", path.display()))?;
    serde_json::from_str(raw).with_context(|| format!("{}:{}", path.display(), line + 1))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn check_request(l: &Line, explain: bool) -> Result<pb::CheckRequest> {
    let (type_, id) = l
        .resource
        .split_once(':')
        .ok_or_else(|| anyhow!("resource {:?} is not type:id", l.resource))?;
    Ok(pb::CheckRequest {
        workspace: l.workspace.clone(),
        subject: l.subject.clone(),
        action: l.action.clone(),
        resource: Some(pb::ResourceRef {
            r#type: type_.to_string(),
            id: id.to_string(),
            ..Default::default()
        }),
        explain,
        ..Default::default()
    })
}

fn check_body(
    fields: [Option<String>; 4],
    requests: Option<PathBuf>,
    line: usize,
    explain: bool,
) -> Result<Vec<u8>> {
    let (l, from) = match (requests, fields) {
        (Some(path), [None, None, None, None]) => (
            parse_line(&read(&path)?, &path, line)?,
            format!("{}:{}", path.display(), line + 1),
        ),
        (None, [Some(workspace), Some(subject), Some(action), Some(resource)]) => (
            Line {
                workspace,
                subject,
                action,
                resource,
                allowed: None,
            },
            "arguments".to_string(),
        ),
        _ => bail!("give either --requests FILE [--line K] or all of --workspace --subject --action --resource"),
    };
    let req = check_request(&l, explain)?;
    eprintln!(
        "encode_body: Check {} {} {} {} (from {from}; expected allowed: {})",
        l.workspace,
        l.subject,
        l.action,
        l.resource,
        l.allowed
            .map(|a| a.to_string())
            .unwrap_or_else(|| "?".to_string())
    );
    frame(&req)
}

fn batch_body(path: &Path, first: usize, count: usize) -> Result<Vec<u8>> {
    let text = read(path)?;
    let lines = (first..first + count)
        .map(|line| parse_line(&text, path, line))
        .collect::<Result<Vec<_>>>()?;
    let checks = lines
        .iter()
        .map(|l| check_request(l, false))
        .collect::<Result<Vec<_>>>()?;
    let allowed = lines.iter().filter(|l| l.allowed == Some(true)).count();
    eprintln!(
        "encode_body: CheckBatch of {count} checks, lines {}..={} of {} ({allowed} expected allowed)",
        first + 1,
        first + count,
        path.display()
    );
    frame(&pb::CheckBatchRequest {
        checks,
        consistency: None,
    })
}

fn main() -> Result<()> {
    let body = match Args::parse().what {
        What::Check {
            workspace,
            subject,
            action,
            resource,
            requests,
            line,
            explain,
        } => check_body(
            [workspace, subject, action, resource],
            requests,
            line,
            explain,
        )?,
        What::Batch {
            requests,
            first,
            count,
        } => batch_body(&requests, first, count)?,
        What::List {
            workspace,
            subject,
            resource_type,
            action,
            page_size,
        } => frame(&pb::ListVisibleRequest {
            workspace,
            subject,
            resource_type,
            action,
            page_size,
            ..Default::default()
        })?,
        What::Health => frame(&tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })?,
    };
    eprintln!(
        "encode_body: {} bytes ({} protobuf bytes)",
        body.len(),
        body.len() - 5
    );
    let mut out = std::io::stdout().lock();
    out.write_all(&body)?;
    out.flush()?;
    Ok(())
}
