//! The one integration-test binary (each extra binary would link DataFusion again).

mod cli;
mod cluster;
mod common;
mod config;
mod connectors;
mod decide;
mod derived;
mod kpi_hand;
mod lake;
mod mail;
mod properties;
mod pull_cli;
mod report;
mod s3;
mod sql;
