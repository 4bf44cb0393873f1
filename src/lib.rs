//! ticketlake: help-desk ticket histories into a Parquet lake, service-desk KPIs in
//! DataFusion SQL, and the reports and decisions built on them.
//!
//! Stages, one module each (dependencies point one way: `cli` → the rest;
//! `sources` → `lake` through Arrow batches; `kpi` → `engine` → `lake`):
//! - [`model`], the canonical `tickets` and `events` schemas;
//! - [`config`], `ticketlake.toml`;
//! - [`sources`], where tickets come from (the synthetic INSA generator for now);
//! - [`lake`], the only writer of the Parquet lake;
//! - [`engine`], the DataFusion session, business-time UDFs;
//! - [`queries`] and [`kpi`], the KPI SQL and its registry;
//! - [`decision`], the three desk organisations compared (pure functions);
//! - [`output`], tables, CSV, JSON and Parquet for results;
//! - [`report`], the monthly report: templates, charts, HTML and PDF;
//! - [`mail`], its delivery by e-mail;
//! - [`cli`], the `ticketlake` command.

pub mod cli;
pub mod config;
pub mod decision;
pub mod engine;
pub mod kpi;
pub mod lake;
pub mod mail;
pub mod model;
pub mod output;
pub mod pseudonym;
pub mod queries;
pub mod report;
pub mod sources;
