//! SQL-defined functions: the project's `udfs/*.sql` files hold `CREATE FUNCTION` statements
//! that every model can call. A call is expanded into the function's body (arguments cast to
//! the declared types, the result to the declared return type) when DataFusion simplifies the
//! plan, so the optimizer sees through it and nothing runs row by row in a closure.
//!
//! ```sql
//! CREATE FUNCTION net_price(price DECIMAL(12,2), discount DECIMAL(12,2)) RETURNS DECIMAL(12,2)
//!   RETURN $price * (1 - $discount);
//! ```
//!
//! Arguments are referred to as `$name` (or `$1`, `$2`, …), as DataFusion's SQL reads them.
//!
//! [`register_builtins`] registers dfpipe's own functions, in one list for every session.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::context::{FunctionFactory, RegisterFunction, SessionState};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, CreateFunction, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, cast,
};
use datafusion::optimizer::analyzer::type_coercion::TypeCoercionRewriter;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Error, Result, df_message};

/// Registers dfpipe's own functions in `ctx`: the cleaning functions of `dfpipe-udfs` and those
/// the source views call by name. Every session takes them, a cluster's scheduler and executors
/// too (they resolve a plan's functions by name).
pub fn register_builtins(ctx: &SessionContext) {
    dfpipe_udfs::register_all(ctx);
    crate::engine::clean::register(ctx);
    crate::engine::plain_decimal::register(ctx);
    crate::engine::hive_value::register(ctx);
}

/// Turns `CREATE FUNCTION` statements into functions expanded at planning time.
#[derive(Debug, Default)]
pub struct SqlFunctionFactory;

#[async_trait]
impl FunctionFactory for SqlFunctionFactory {
    async fn create(&self, _state: &SessionState, statement: CreateFunction) -> DfResult<RegisterFunction> {
        let name = statement.name.clone();
        let Some(return_type) = statement.return_type.clone() else {
            return Err(DataFusionError::Plan(format!("function `{name}` needs `RETURNS <type>`")));
        };
        let Some(body) = statement.params.function_body.clone() else {
            return Err(DataFusionError::Plan(format!("function `{name}` needs a body: `RETURN <expression>`")));
        };
        let arg_types: Vec<DataType> = statement.args.unwrap_or_default().into_iter().map(|a| a.data_type).collect();
        let volatility = statement.params.behavior.unwrap_or(Volatility::Immutable);
        // The body as an expression over typed argument columns, type-coerced once here (a
        // call's expansion happens after DataFusion's own coercion pass).
        let schema = DFSchema::from_unqualified_fields(
            arg_types.iter().enumerate().map(|(i, t)| Field::new(arg_column(i + 1), t.clone(), true)).collect(),
            Default::default(),
        )?;
        let body = body
            .transform(|e| {
                Ok(match e {
                    Expr::Placeholder(p) => {
                        let position = p.id.trim_start_matches('$').parse::<usize>().ok();
                        match position.filter(|i| *i >= 1 && *i <= arg_types.len()) {
                            Some(i) => Transformed::yes(Expr::Column(Column::from_name(arg_column(i)))),
                            None => {
                                return Err(DataFusionError::Plan(format!(
                                    "function `{name}`: {} is not one of its {} argument(s)",
                                    p.id,
                                    arg_types.len()
                                )));
                            }
                        }
                    }
                    other => Transformed::no(other),
                })
            })?
            .data
            .rewrite(&mut TypeCoercionRewriter::new(&schema))?
            .data;
        let function =
            SqlFunction { signature: Signature::any(arg_types.len(), volatility), name, arg_types, return_type, body };
        Ok(RegisterFunction::Scalar(Arc::new(ScalarUDF::new_from_impl(function))))
    }
}

/// A function whose calls are replaced by its body.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SqlFunction {
    name: String,
    signature: Signature,
    arg_types: Vec<DataType>,
    return_type: DataType,
    body: Expr,
}

impl ScalarUDFImpl for SqlFunction {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(self.return_type.clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(DataFusionError::Internal(format!("SQL function `{}` should have been expanded when planning", self.name)))
    }

    /// `f(a, b)` → `CAST(body[arg1 := CAST(a AS t1), arg2 := CAST(b AS t2)] AS returns)`.
    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        let args: Vec<Expr> = args.into_iter().zip(&self.arg_types).map(|(a, t)| cast(a, t.clone())).collect();
        let expanded = self.body.clone().transform(|e| {
            Ok(match e {
                Expr::Column(c) if c.relation.is_none() => match argument_position(&c.name) {
                    Some(i) if i <= args.len() => Transformed::yes(args[i - 1].clone()),
                    _ => Transformed::no(Expr::Column(c)),
                },
                other => Transformed::no(other),
            })
        })?;
        Ok(ExprSimplifyResult::Simplified(cast(expanded.data, self.return_type.clone())))
    }
}

/// The column standing for argument `i` (1-based) in a function's body.
fn arg_column(i: usize) -> String {
    format!("__dfpipe_arg_{i}")
}

/// The inverse of [`arg_column`].
fn argument_position(column: &str) -> Option<usize> {
    column.strip_prefix("__dfpipe_arg_")?.parse().ok()
}

/// Registers the functions of every `*.sql` file in `dir` (if it exists) in `ctx`; returns
/// their names. Errors name the file.
pub async fn load(ctx: &SessionContext, dir: &Path, project_dir: &Path) -> Result<Vec<String>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(vec![]) };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let mut names = Vec::new();
    for file in files {
        let label = file.strip_prefix(project_dir).unwrap_or(&file).display().to_string();
        let fail = |msg: String| Error::Project(format!("{label}: {msg}"));
        let text = std::fs::read_to_string(&file).map_err(|e| fail(e.to_string()))?;
        let statements = Parser::parse_sql(&GenericDialect {}, &text).map_err(|e| fail(e.to_string()))?;
        for statement in statements {
            let sql = statement.to_string();
            if !matches!(statement, datafusion::sql::sqlparser::ast::Statement::CreateFunction(_)) {
                return Err(fail(format!(
                    "only CREATE FUNCTION statements belong in udfs/, found `{}`",
                    sql.chars().take(60).collect::<String>()
                )));
            }
            let df = ctx.sql(&sql).await.map_err(|e| fail(df_message(&e)))?;
            df.collect().await.map_err(|e| fail(df_message(&e)))?;
            if let datafusion::sql::sqlparser::ast::Statement::CreateFunction(f) = statement {
                names.push(f.name.to_string());
            }
        }
    }
    Ok(names)
}
