//! Sources: where tickets come from. Each connector turns its records into canonical
//! Arrow batches (through [`normalize`]) and hands them to the lake writer; only this
//! stage talks to the outside world.
//!
//! - [`itop`], [`glpi`]: the REST connectors, reading answers with [`json`]; [`files`]:
//!   CSV / JSON-lines exports;
//! - [`pull`]: incremental, crash-safe pulls of the configured sources;
//! - [`fixtures`]: the synthetic INSA group, written directly or served in each
//!   source's native shape by loopback servers.

pub mod batch;
pub mod config;
pub mod files;
pub mod fixtures;
pub mod glpi;
pub mod http;
pub mod itop;
pub mod json;
pub mod normalize;
pub mod pull;
