//! Read-only ad-hoc SQL: statements are parsed, planned and checked against
//! [`super::read_only`] before anything runs, so DDL, DML, COPY and SET are refused with
//! a clear message.

use anyhow::{Result, bail};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};

/// Why a statement is refused, or None when it is a query.
fn refusal(stmt: &Statement) -> Option<&'static str> {
    use datafusion::sql::sqlparser::ast::Statement as S;
    match stmt {
        Statement::Statement(s) => match s.as_ref() {
            S::Query(_) | S::Explain { .. } | S::ShowTables { .. } | S::ShowColumns { .. } => None,
            S::Insert(_)
            | S::Update { .. }
            | S::Delete(_)
            | S::Merge { .. }
            | S::Truncate { .. } => Some("data changes (INSERT, UPDATE, DELETE…)"),
            S::Set(_) => Some("SET"),
            S::Copy { .. } => Some("COPY"),
            S::CreateTable(_)
            | S::CreateView { .. }
            | S::Drop { .. }
            | S::AlterTable { .. }
            | S::CreateSchema { .. }
            | S::CreateDatabase { .. }
            | S::CreateFunction(_) => Some("DDL (CREATE, DROP, ALTER)"),
            _ => Some("this kind of statement"),
        },
        Statement::CreateExternalTable(_) => Some("CREATE EXTERNAL TABLE"),
        Statement::CopyTo(_) => Some("COPY"),
        Statement::Explain(_) => None,
        _ => Some("this kind of statement"),
    }
}

/// Runs each statement of `sql` (separated by `;`) and returns their results.
pub async fn run_read_only(
    ctx: &SessionContext,
    sql: &str,
) -> Result<Vec<(SchemaRef, Vec<RecordBatch>)>> {
    let statements = DFParser::parse_sql(sql).map_err(|e| anyhow::anyhow!("SQL error: {e}"))?;
    if statements.is_empty() {
        bail!("no SQL statement given");
    }
    let mut out = Vec::new();
    for stmt in statements {
        if let Some(what) = refusal(&stmt) {
            bail!("refused: ticketlake sql is read-only and does not run {what}: {stmt}");
        }
        let state = ctx.state();
        let plan = state
            .statement_to_plan(stmt)
            .await
            .map_err(|e| anyhow::anyhow!("SQL error: {e}"))?;
        super::read_only()
            .verify_plan(&plan)
            .map_err(|e| anyhow::anyhow!("refused: ticketlake sql is read-only: {e}"))?;
        let df = ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| anyhow::anyhow!("SQL error: {e}"))?;
        let schema: SchemaRef = std::sync::Arc::new(df.schema().as_arrow().clone());
        let batches = df
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("SQL error: {e}"))?;
        out.push((schema, batches));
    }
    Ok(out)
}
