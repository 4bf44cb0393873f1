//! Sources: where tickets come from. Each source turns its records into canonical Arrow
//! batches ([`batch`]) and hands them to the lake writer; only this stage talks to the
//! outside world. For now: the synthetic INSA generator ([`fixtures`]).

pub mod batch;
pub mod fixtures;
