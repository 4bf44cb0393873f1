//! Result output: aligned tables, CSV, JSON and Parquet from Arrow batches. Writes to
//! the writer it is given; a closed pipe is reported as such so the CLI can exit quietly.

use std::io::Write;

use anyhow::Result;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::compute::kernels::arity::unary;
use arrow::datatypes::Float64Type;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::FormatOptions;

/// An output format of `kpi` and `sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Parquet,
}

/// Decimals of floats in text tables (CSV, JSON and Parquet keep every digit).
pub const TABLE_DECIMALS: i32 = 3;

/// An aligned text table for people: floats rounded to [`TABLE_DECIMALS`], nulls blank.
pub fn table(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String> {
    if batches.iter().all(|b| b.num_rows() == 0) {
        let cols: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Ok(format!("({}) — no rows\n", cols.join(", ")));
    }
    let scale = 10f64.powi(TABLE_DECIMALS);
    let rounded = batches
        .iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .map(|c| match c.as_primitive_opt::<Float64Type>() {
                    Some(f) => Arc::new(unary::<_, _, Float64Type>(f, |v| {
                        (v * scale).round() / scale
                    })) as ArrayRef,
                    None => c.clone(),
                })
                .collect();
            RecordBatch::try_new(b.schema(), columns)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let opts = FormatOptions::default().with_null("");
    let t = arrow::util::pretty::pretty_format_batches_with_options(&rounded, &opts)?;
    Ok(format!("{t}\n"))
}

/// CSV with a header line. A list, struct or map (a cell of `ticket_history`'s lists, of
/// `quantiles_cont` or `recurring_instants`) is written as the table shows it, e.g.
/// `"[2.0, 3.6]"`: CSV has no nested values.
pub fn csv(out: &mut dyn Write, batches: &[RecordBatch]) -> Result<()> {
    let mut w = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(out);
    for b in batches {
        w.write(&nested_as_text(b)?)?;
    }
    Ok(())
}

/// `batch` with each nested column replaced by its text (nulls stay null).
fn nested_as_text(batch: &RecordBatch) -> Result<RecordBatch> {
    if !batch.columns().iter().any(|c| c.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let opts = FormatOptions::default();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if !c.data_type().is_nested() {
            fields.push(f.clone());
            columns.push(c.clone());
            continue;
        }
        let shown = arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &opts)?;
        let text: StringArray = (0..c.len())
            .map(|i| c.is_valid(i).then(|| shown.value(i).to_string()))
            .collect();
        fields.push(Arc::new(Field::new(f.name(), DataType::Utf8, true)));
        columns.push(Arc::new(text) as ArrayRef);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Rows of record batches as JSON objects (nulls kept, numbers as numbers).
pub fn json_rows(batches: &[RecordBatch]) -> Result<Vec<serde_json::Value>> {
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::JsonArray>(Vec::new());
    for b in batches {
        writer.write(b)?;
    }
    writer.finish()?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// A JSON array of row objects.
pub fn json(out: &mut dyn Write, batches: &[RecordBatch]) -> Result<()> {
    let rows = json_rows(batches)?;
    serde_json::to_writer_pretty(&mut *out, &rows)?;
    writeln!(out)?;
    Ok(())
}

/// A Parquet file (zstd). Text columns are written as plain strings (`Utf8`), whatever
/// the engine held them as, so that any Parquet reader takes them.
pub fn parquet(path: &std::path::Path, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    let file = std::fs::File::create(path)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    use arrow::datatypes::DataType;
    let plain = crate::model::retyped(schema, &DataType::Utf8View, &DataType::Utf8);
    let mut w = parquet::arrow::ArrowWriter::try_new(file, plain.clone(), Some(props))?;
    for b in batches {
        w.write(&crate::model::cast_to(b, &plain)?)?;
    }
    w.close()?;
    Ok(())
}

/// Is this error a closed pipe (`ticketlake sql … | head`)? Arrow's writers turn the
/// I/O error into text, so the text is checked too.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || e.to_string().contains("Broken pipe (os error 32)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Builder, Int64Array, ListBuilder};

    #[test]
    fn a_list_is_written_to_csv_as_the_table_shows_it() {
        let mut lists = ListBuilder::new(Float64Builder::new());
        lists.values().append_value(2.0);
        lists.values().append_value(3.6);
        lists.append(true);
        lists.append(false);
        let batch = RecordBatch::try_from_iter([
            ("n", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
            ("q", Arc::new(lists.finish()) as ArrayRef),
        ])
        .unwrap();
        let mut out = Vec::new();
        csv(&mut out, &[batch]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "n,q\n1,\"[2.0, 3.6]\"\n2,\n"
        );
    }
}
