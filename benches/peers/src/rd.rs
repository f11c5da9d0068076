//! Redis: a set per pair, `p:{account}:{app}`, holding its token hashes, and a key per token,
//! `t:{hash}` (the raw 32 bytes), holding the token's account, app, session id and expiry.
//! Revoke is one EVALSHA of a script that reads the pair's set and deletes the set and every
//! token it names, atomically, in one round trip.

use crate::bench::{Spec, token_hash};
use anyhow::Context;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};

/// Derives the token keys inside the script, so it is single-node only (not Cluster-safe),
/// as in the peer baselines.
const REVOKE: &str = r"
local hashes = redis.call('SMEMBERS', KEYS[1])
local keys = { KEYS[1] }
for _, h in ipairs(hashes) do keys[#keys + 1] = 't:' .. h end
redis.call('DEL', unpack(keys))
return #hashes
";

fn pair_key(account: i64, app: i32) -> String {
    format!("p:{account}:{app}")
}

fn token_key(hash: &[u8; 32]) -> Vec<u8> {
    [b"t:".as_slice(), hash].concat()
}

/// Account, app, session id and expiry, packed: about the size of the PostgreSQL row.
fn token_value(account: i64, app: i32, hash: &[u8; 32]) -> Vec<u8> {
    let mut v = Vec::with_capacity(36);
    v.extend_from_slice(&account.to_be_bytes());
    v.extend_from_slice(&app.to_be_bytes());
    v.extend_from_slice(&hash[..16]);
    v.extend_from_slice(&(1_900_000_000 + account).to_be_bytes());
    v
}

pub struct Rd {
    client: Client,
    /// The connection that loads and restores.
    admin: MultiplexedConnection,
    sha: String,
}

async fn connect(client: &Client) -> anyhow::Result<MultiplexedConnection> {
    // No response timeout: a pipeline of thousands of writes under `appendfsync always` may
    // take longer than the client's default 500 ms, and a slow revoke is a figure, not an error.
    let config = AsyncConnectionConfig::new().set_response_timeout(None);
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

impl Rd {
    pub async fn open(url: &str, flushdb: bool) -> anyhow::Result<Rd> {
        let client = Client::open(url).with_context(|| format!("opening {url}"))?;
        let mut admin = connect(&client)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        if flushdb {
            redis::cmd("FLUSHDB").query_async::<()>(&mut admin).await?;
        } else {
            let keys: u64 = redis::cmd("DBSIZE").query_async(&mut admin).await?;
            anyhow::ensure!(
                keys == 0,
                "the database holds {keys} keys: point the benchmark at a scratch server, or pass --flushdb"
            );
        }
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(REVOKE)
            .query_async(&mut admin)
            .await?;
        Ok(Rd { client, admin, sha })
    }

    /// The server's name and version, and the settings that decide when a write is on disk.
    pub async fn describe(&self) -> anyhow::Result<(String, String)> {
        let mut c = self.admin.clone();
        let info: String = redis::cmd("INFO").arg("server").query_async(&mut c).await?;
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim()
            .to_owned();
        let mut get = async |what: &str| -> anyhow::Result<String> {
            let kv: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(what)
                .query_async(&mut c)
                .await?;
            Ok(kv.get(1).cloned().unwrap_or_default())
        };
        let aof = get("appendonly").await?;
        let fsync = get("appendfsync").await?;
        let save = get("save").await?;
        let settings = if aof == "yes" {
            format!("appendonly=yes, appendfsync={fsync}")
        } else if save.is_empty() {
            "no AOF, no RDB snapshots".to_owned()
        } else {
            format!("no AOF, RDB save '{save}'")
        };
        Ok((format!("Redis {version}"), settings))
    }

    async fn write_pairs(&mut self, spec: Spec, pairs: &[(i64, i32)]) -> anyhow::Result<()> {
        for chunk in pairs.chunks(2_000) {
            let mut pipe = redis::pipe();
            for &(account, app) in chunk {
                let hashes: Vec<[u8; 32]> = (0..spec.tokens_per_pair)
                    .map(|i| token_hash(account, app, i32::try_from(i).expect("fits i32")))
                    .collect();
                for h in &hashes {
                    pipe.cmd("SET")
                        .arg(token_key(h))
                        .arg(token_value(account, app, h))
                        .ignore();
                }
                pipe.cmd("SADD")
                    .arg(pair_key(account, app))
                    .arg(hashes.iter().map(|h| h.as_slice()).collect::<Vec<_>>())
                    .ignore();
            }
            pipe.query_async::<()>(&mut self.admin).await?;
        }
        Ok(())
    }

    pub async fn load(&mut self, spec: Spec) -> anyhow::Result<()> {
        let pairs: Vec<(i64, i32)> = (0..spec.pairs()).map(|u| spec.pair(u)).collect();
        self.write_pairs(spec, &pairs).await?;
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut self.admin)
            .await?;
        if let Some(used) = info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory_human:"))
        {
            eprintln!("redis used_memory after load: {}", used.trim());
        }
        Ok(())
    }

    /// Writes the same keys again (SET and SADD are idempotent).
    pub async fn restore(&mut self, spec: Spec, pairs: &[(i64, i32)]) -> anyhow::Result<()> {
        self.write_pairs(spec, pairs).await
    }

    pub async fn connect(&self) -> anyhow::Result<Conn> {
        Ok(Conn {
            con: connect(&self.client).await?,
            sha: self.sha.clone(),
        })
    }
}

/// A worker's own connection (a multiplexed connection, used by this worker alone).
pub struct Conn {
    con: MultiplexedConnection,
    sha: String,
}

fn short(e: &redis::RedisError) -> String {
    if e.is_io_error() || e.is_connection_dropped() {
        "connection".into()
    } else {
        format!("redis {:?}", e.kind())
    }
}

impl Conn {
    pub async fn revoke(&mut self, account: i64, app: i32) -> Result<usize, String> {
        redis::cmd("EVALSHA")
            .arg(&self.sha)
            .arg(1)
            .arg(pair_key(account, app))
            .query_async::<usize>(&mut self.con)
            .await
            .map_err(|e| short(&e))
    }

    pub async fn ping(&mut self) -> Result<(), String> {
        redis::cmd("PING")
            .query_async::<()>(&mut self.con)
            .await
            .map_err(|e| short(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values() {
        let h = token_hash(7, 3, 1);
        assert_eq!(pair_key(7, 3), "p:7:3");
        assert_eq!(token_key(&h).len(), 34);
        assert_eq!(&token_key(&h)[..2], b"t:");
        assert_eq!(token_value(7, 3, &h).len(), 36);
    }
}
