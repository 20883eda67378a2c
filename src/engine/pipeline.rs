//! Compiles a project into one DataFusion session: the selected outputs' sources become
//! listing tables and their models become views, in dependency order, so that each output is a
//! single logical plan from the files to the sink.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use datafusion::common::ScalarValue;

use datafusion::common::TableReference;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;

use crate::config::Strategy;
use crate::config::params::ParamOrigin;
use crate::config::{OutputConfig, POSTGRES_NAME_BYTES, Target};
use crate::engine::{computed_once, params, session, sources};
use crate::error::{Error, Result, df_message};
use crate::memory::MemoryBudget;
use crate::memory::accounting::{self, Accounting, Writer};
use crate::memory::estimate::{Estimate, estimate};
use crate::memory::strategy::{Decision, ExecSettings, decide};
use crate::project::{Project, Selection};

/// What `target`'s writer is, as far as memory goes; a Parquet row's size is the estimate's
/// decoded bytes per row (100 bytes when no scan knows its rows).
fn writer(target: &Target, estimate: &Estimate) -> Writer {
    match target {
        Target::Parquet { .. } => {
            let rows: u64 = estimate.scans.iter().filter_map(|s| s.rows).sum();
            Writer::Parquet { row_bytes: estimate.bytes.checked_div(rows).map_or(100, |b| b.max(1)) }
        }
        Target::DuckDb(_) => Writer::DuckDb,
        Target::Postgres { copy_streams, .. } => Writer::Postgres { streams: *copy_streams },
    }
}

/// A project ready to plan or run.
pub struct Pipeline {
    /// The project.
    pub project: Project,
    /// The outputs selected, in dependency order.
    pub outputs: Vec<OutputConfig>,
    /// The memory figures the session was built with.
    pub budget: MemoryBudget,
    /// The session holding the sources and views.
    pub ctx: SessionContext,
    /// The view SQL of each source with `clean:` options.
    pub cleaned: std::collections::BTreeMap<String, String>,
    /// The Ballista cluster the outputs' queries run on (`--cluster`), if any.
    pub cluster: Option<crate::engine::cluster::Cluster>,
    /// Values dfpipe binds per model (`$start`/`$end`/`$last` of incremental outputs).
    bound: std::sync::Mutex<BTreeMap<String, HashMap<String, ScalarValue>>>,
    /// The models computed once, held for the run (their rows charged to the session's pool).
    held: std::sync::Mutex<Vec<computed_once::Held>>,
}

impl Pipeline {
    /// Selects outputs, builds the session, registers what they need. Every source is checked
    /// here, before anything runs.
    pub async fn prepare(project: Project, selection: &Selection) -> Result<Pipeline> {
        let outputs = project.selected_outputs(selection)?;
        let budget = MemoryBudget::measure(&project.config.memory);
        // Planning, estimating and materializing happen in a spilling session; each target then
        // runs in a session with its own strategy.
        let ctx = session::build(&project.config, &ExecSettings::new(Strategy::Spill, &budget))?;

        let mut cleaned = std::collections::BTreeMap::new();
        for name in needed_sources(&project, &outputs) {
            if let Some(sql) = sources::register(&ctx, &project.config.sources[&name]).await? {
                cleaned.insert(name, sql);
            }
        }
        let config = &project.config;
        let functions = crate::engine::functions::load(&ctx, &config.functions_dir, &config.project_dir).await?;
        if !functions.is_empty() {
            tracing::debug!("SQL functions: {}", functions.join(", "));
        }
        let bound = std::sync::Mutex::new(run_bound(&outputs, crate::util::fault::now()));
        let cluster = crate::engine::cluster::Cluster::of(&project.config);
        let held = Default::default();
        let pipeline = Pipeline { project, outputs, budget, ctx, cleaned, cluster, bound, held };
        pipeline.register_models(&BTreeSet::new(), 0).await?;
        pipeline.check_output_columns().await?;
        Ok(pipeline)
    }

    /// Refuses, before anything runs, column names a target cannot take: an empty one; two that
    /// differ only in case in a DuckDB table (DuckDB takes them as one name); a `unique_key`
    /// that is not a column of the model.
    async fn check_output_columns(&self) -> Result<()> {
        use crate::util::suggest::did_you_mean;
        for output in &self.outputs {
            let model = &self.project.models[&output.model];
            let df = self.ctx.table(output.model.as_str()).await.map_err(|e| Error::Project(df_message(&e)))?;
            let names: Vec<&str> = df.schema().fields().iter().map(|f| f.name().as_str()).collect();
            let what = format!("model `{}` ({})", output.model, model.file.display());
            if let Some(at) = names.iter().position(|n| n.trim().is_empty()) {
                return Err(Error::Project(format!(
                    "{what}: column {} has no name; name it with AS in the SELECT",
                    at + 1
                )));
            }
            if let Target::DuckDb(_) = output.target {
                for (j, name) in names.iter().enumerate() {
                    if let Some(other) = names[..j].iter().find(|n| n.eq_ignore_ascii_case(name)) {
                        return Err(Error::Project(format!(
                            "{what}: columns `{other}` and `{name}` differ only in case, and DuckDB takes them \
                             as one name; rename one with AS"
                        )));
                    }
                }
            }
            if let Target::Postgres { .. } = output.target
                && let Some(long) = names.iter().find(|n| n.len() > POSTGRES_NAME_BYTES)
            {
                return Err(Error::Project(format!(
                    "{what}: column `{long}` is {} bytes long; PostgreSQL keeps the first {POSTGRES_NAME_BYTES} \
                     bytes of a name, so the table's column would be named otherwise (and two long names could \
                     be one): shorten it with AS",
                    long.len()
                )));
            }
            if let Some(key) = output.unique_key.iter().find(|k| !names.contains(&k.as_str())) {
                return Err(Error::Config(format!(
                    "the output of model `{}` to {}: unique_key `{key}` is not a column of the model{}; its columns: {}",
                    output.model,
                    output.target.label(&self.project.config.project_dir),
                    did_you_mean(key, names.iter().copied()),
                    names.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// With a cluster: refuses sources its executors cannot read, then checks the scheduler
    /// answers (within a bounded time). Nothing has run when this fails.
    pub async fn check_cluster(&self) -> Result<()> {
        let Some(cluster) = &self.cluster else { return Ok(()) };
        let sources = self.needed_sources();
        cluster.check_sources(sources.iter().map(|name| &self.project.config.sources[name]))?;
        cluster.check_reachable().await
    }

    /// Registers the needed models as views in dependency order; those in `cache` are computed
    /// now and held in memory when they fit ([`computed_once`]), so the views downstream read
    /// them instead of recomputing them.
    async fn register_models(&self, cache: &BTreeSet<String>, cap: u64) -> Result<()> {
        let needed = needed_models(&self.project, &self.outputs);
        let params = &self.project.config.params;
        let mut used = BTreeSet::new();
        // Every model that does not plan is reported, not only the first; a model reading one
        // that failed is not planned.
        let mut failed: BTreeMap<String, String> = BTreeMap::new();
        let mut skipped: Vec<&str> = Vec::new();
        for name in self.project.order.iter().filter(|n| needed.contains(*n)) {
            let model = &self.project.models[name];
            let fail = |e: datafusion::error::DataFusionError| {
                Error::Project(format!("model `{name}` ({}): {}", model.file.display(), df_message(&e)))
            };
            if model.model_deps.iter().any(|d| failed.contains_key(d)) {
                skipped.push(name.as_str());
                continue;
            }
            let (df, names) = match self.model_frame(&self.ctx, name).await {
                Ok(planned) => planned,
                Err(e) => {
                    failed.insert(name.clone(), e.to_string());
                    continue;
                }
            };
            if let Some(why) = self.narrowed_by_run_values(name, &names) {
                failed.insert(name.clone(), format!("model `{name}` ({}): {why}", model.file.display()));
                continue;
            }
            used.extend(names);
            let table = TableReference::bare(name.as_str());
            self.ctx.deregister_table(table.clone()).map_err(fail)?;
            let pool = &self.ctx.runtime_env().memory_pool;
            let held = match cache.contains(name) {
                true => computed_once::compute(name, df.clone(), pool, cap as usize).await,
                false => None,
            };
            match held {
                Some(held) => {
                    self.ctx.register_table(table, held.table.clone()).map_err(fail)?;
                    self.held.lock().unwrap_or_else(|p| p.into_inner()).push(held);
                }
                None => {
                    self.ctx.register_table(table, df.into_view()).map_err(fail)?;
                }
            }
        }
        if !failed.is_empty() {
            let count = failed.len();
            let all: Vec<String> = failed.into_values().collect();
            let mut text =
                if count == 1 { all.join("") } else { format!("{count} models do not plan:\n{}", all.join("\n\n")) };
            if !skipped.is_empty() {
                text.push_str(&format!("\n(not planned, as they read a broken model: {})", skipped.join(", ")));
            }
            return Err(Error::Project(text));
        }
        let unused: Vec<&String> = params
            .iter()
            .filter(|(name, p)| p.origin == ParamOrigin::CommandLine && !used.contains(*name))
            .map(|(name, _)| name)
            .collect();
        if let Some(name) = unused.first() {
            let used: Vec<String> = used.iter().map(|n| format!("${n}")).collect();
            return Err(Error::Usage(format!(
                "--param {name}: no selected model has a `${name}` placeholder{}",
                if used.is_empty() { String::new() } else { format!(" (they use {})", used.join(", ")) }
            )));
        }
        Ok(())
    }

    /// Why model `name`, which uses the parameters `used`, cannot be planned: its `$start`/`$end`/
    /// `$last` are bound per run to what its incremental output loads now, so its view holds only
    /// those rows, and anything else reading it — another model, another output of it — would see
    /// only them (a `replace` output would be replaced by them). dbt's `{{ this }}` has no such
    /// trap because a model there is its table; here a model is a view of its query.
    fn narrowed_by_run_values(&self, name: &str, used: &BTreeSet<String>) -> Option<String> {
        let bound: Vec<String> =
            used.iter().filter(|p| params::RUN_BOUND.contains(&p.as_str())).map(|p| format!("${p}")).collect();
        if bound.is_empty() {
            return None;
        }
        let (list, verb) = (bound.join(", "), if bound.len() == 1 { "is" } else { "are" });
        let bound = format!("{list} {verb}");
        let fix = format!(
            "put the filter on {list} in a model of its own that only the incremental output reads \
             (e.g. `{name}_new.sql`: SELECT * FROM {name} WHERE …), and let the rest read `{name}`"
        );
        let all_outputs = self.project.config.outputs.iter().flatten();
        if let Some(plain) = all_outputs.filter(|o| o.model == name).find(|o| o.incremental.is_none()) {
            return Some(format!(
                "its {bound} bound per run to what its incremental output loads, so its output to {} would \
                 get only those rows; {fix}",
                plain.target.label(&self.project.config.project_dir)
            ));
        }
        let reader = self.project.models.values().find(|m| m.model_deps.contains(name))?;
        Some(format!(
            "its {bound} bound per run to what its incremental output loads, so model `{}`, which reads it, \
             would see only those rows; {fix}",
            reader.name
        ))
    }

    /// Model `name`'s SQL planned in `ctx` (a query only: no DDL, DML or statements) with its
    /// parameters bound; and the parameters it used.
    async fn model_frame(
        &self,
        ctx: &SessionContext,
        name: &str,
    ) -> Result<(datafusion::prelude::DataFrame, BTreeSet<String>)> {
        let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        let model = &self.project.models[name];
        let df = ctx.sql_with_options(&model.sql, options).await.map_err(|e| {
            let relations: Vec<String> =
                self.project.models.keys().chain(self.project.config.sources.keys()).cloned().collect();
            Error::Project(crate::util::sql_errors::render(&model.file, &model.sql, &e, &relations))
        })?;
        let bound = self.bound.lock().expect("bound values").get(name).cloned().unwrap_or_default();
        let (df, names) = params::bind(ctx, df, &self.project.config.params, &bound, name, &model.file).await?;
        Ok((
            analyzed(df).map_err(|e| Error::Project(format!("model `{name}` ({}): {e}", model.file.display())))?,
            names,
        ))
    }

    /// Model `name` planned in `ctx` with `$start`/`$end`/`$last` set to `values` (one window
    /// or mark of an incremental output); the views upstream stay as registered.
    pub async fn model_with(
        &self,
        ctx: &SessionContext,
        name: &str,
        values: HashMap<String, ScalarValue>,
    ) -> Result<datafusion::prelude::DataFrame> {
        self.bound.lock().expect("bound values").insert(name.to_string(), values);
        Ok(self.model_frame(ctx, name).await?.0)
    }

    /// What a run of incremental outputs reads: each source in `narrowed` only from the files
    /// kept (full locations, see [`crate::engine::new_files`]), and each model in `values` with
    /// its run-wide `$start`/`$end`/`$last` (the whole span the run loads); the views are then
    /// planned again, once.
    pub async fn apply_increments(
        &self,
        narrowed: BTreeMap<String, BTreeSet<String>>,
        values: BTreeMap<String, HashMap<String, ScalarValue>>,
    ) -> Result<()> {
        if narrowed.is_empty() && values.is_empty() {
            return Ok(());
        }
        for (name, keep) in narrowed {
            self.narrow_source(&name, keep).await?;
        }
        self.bound.lock().expect("bound values").extend(values);
        self.register_models(&BTreeSet::new(), 0).await
    }

    /// Registers source `name` narrowed to the files in `keep` (behind its cleaning view, if
    /// any); the views reading it still hold the whole source until planned again.
    async fn narrow_source(&self, name: &str, keep: BTreeSet<String>) -> Result<()> {
        let fail =
            |e: datafusion::error::DataFusionError| Error::Source(format!("source `{name}`: {}", df_message(&e)));
        let cleaned = self.cleaned.get(name);
        let table = match cleaned {
            Some(_) => crate::engine::clean::raw_table(name),
            None => name.to_string(),
        };
        let provider = self.ctx.table_provider(TableReference::bare(table.as_str())).await.map_err(fail)?;
        let narrowed = std::sync::Arc::new(crate::engine::new_files::FilesOnly::new(provider, keep));
        self.ctx.deregister_table(TableReference::bare(table.as_str())).map_err(fail)?;
        self.ctx.register_table(TableReference::bare(table.as_str()), narrowed).map_err(fail)?;
        if let Some(sql) = cleaned {
            let view = self.ctx.sql(sql).await.map_err(fail)?.into_view();
            self.ctx.deregister_table(TableReference::bare(name)).map_err(fail)?;
            self.ctx.register_table(TableReference::bare(name), view).map_err(fail)?;
        }
        Ok(())
    }

    /// The needed models' logical plans as the SQL planner builds them, parameters bound, in
    /// dependency order: what [`crate::engine::lineage`] reads. They are planned in a session of
    /// their own where every source and model is an empty table of its schema, so a reference
    /// to one stays a table scan of its name (the pipeline's views would be inlined), while
    /// CTEs — even one named like a model — stay subqueries of the plan.
    pub async fn lineage_plans(&self) -> Result<Vec<(String, datafusion::logical_expr::LogicalPlan)>> {
        use datafusion::datasource::MemTable;
        let state = self.ctx.state();
        let plain = SessionContext::new_with_config(state.config().clone());
        for f in state.scalar_functions().values() {
            plain.register_udf(f.as_ref().clone());
        }
        for f in state.aggregate_functions().values() {
            plain.register_udaf(f.as_ref().clone());
        }
        for f in state.window_functions().values() {
            plain.register_udwf(f.as_ref().clone());
        }
        let empty = |schema: datafusion::arrow::datatypes::SchemaRef| {
            MemTable::try_new(schema, vec![vec![]]).map(std::sync::Arc::new)
        };
        let fail = |name: &str, e: datafusion::error::DataFusionError| {
            Error::Project(format!("lineage of `{name}`: {}", df_message(&e)))
        };
        for name in self.needed_sources() {
            let schema = self.ctx.table(name.as_str()).await.map_err(|e| fail(&name, e))?.schema().inner().clone();
            plain
                .register_table(name.as_str(), empty(schema).map_err(|e| fail(&name, e))?)
                .map_err(|e| fail(&name, e))?;
        }
        let mut plans = Vec::new();
        for name in self.needed_models() {
            let (df, _) = self.model_frame(&plain, &name).await?;
            let schema = df.schema().inner().clone();
            plans.push((name.clone(), df.logical_plan().clone()));
            plain
                .register_table(name.as_str(), empty(schema).map_err(|e| fail(&name, e))?)
                .map_err(|e| fail(&name, e))?;
        }
        Ok(plans)
    }

    /// The estimate of what `output` reads, and the strategy that follows.
    pub async fn decide(&self, output: &OutputConfig) -> Result<(Estimate, Decision)> {
        let fail = |e: String| Error::Project(format!("model `{}`: {e}", output.model));
        let df = self.ctx.table(TableReference::bare(output.model.as_str())).await.map_err(|e| fail(df_message(&e)))?;
        let plan = df.create_physical_plan().await.map_err(|e| fail(df_message(&e)))?;
        let estimate = estimate(&self.ctx, &plan).await.map_err(fail)?;
        let process = accounting::process_holds().unwrap_or(0);
        let decision = self.decide_from(output, &estimate, process, 0)?;
        Ok((estimate, decision))
    }

    /// `decision`, an in_memory one that ran out of its pool, turned into spill over the same
    /// budget (with the project's `datafusion:` settings).
    pub fn spilling(&self, decision: &Decision) -> Decision {
        let mut budget = self.budget.clone();
        budget.budget = decision.budget;
        budget.fixed_limit = decision.settings.pool_bytes;
        let settings = ExecSettings::new(Strategy::Spill, &budget).with_user(&self.project.config.datafusion);
        Decision {
            strategy: Strategy::Spill,
            reason: "in_memory ran out of its pool, so the target ran again under spill".to_string(),
            settings,
            ..decision.clone()
        }
    }

    /// The decision for `output` estimated at `estimate` when the process holds `process` bytes
    /// before it, with `held` bytes of models computed once (held beside every target for the
    /// rest of the run) taken from its budget.
    pub fn decide_from(&self, output: &OutputConfig, estimate: &Estimate, process: u64, held: u64) -> Result<Decision> {
        // A fixed limit bounds the process: the pool gets what the process and the writer leave.
        let accounting = match self.budget.fixed_limit {
            Some(limit) => Some(Accounting::new(limit, process, writer(&output.target, estimate)).map_err(|e| {
                let label = output.target.label(&self.project.config.project_dir);
                Error::Usage(format!("{label} (model `{}`): {e}", output.model))
            })?),
            None => None,
        };
        let mut budget = self.budget.clone();
        if let Some(a) = &accounting {
            (budget.budget, budget.fixed_limit) = (a.pool, Some(a.pool));
        }
        // Models computed once are held beside every target for the rest of the run.
        budget.budget = budget.budget.saturating_sub(held).max(1);
        budget.fixed_limit = budget.fixed_limit.map(|l| l.saturating_sub(held).max(1));
        let unknown = !estimate.unknown.is_empty();
        let mut decision = decide(estimate.bytes, unknown, &budget, &self.project.config.memory);
        decision.settings = decision.settings.with_user(&self.project.config.datafusion);
        decision.accounting = accounting;
        Ok(decision)
    }

    /// Models that more than one selected target reads (directly or upstream), when every
    /// target reading them runs in memory: worth computing once.
    pub fn shared_in_memory(&self, strategies: &[Strategy]) -> BTreeSet<String> {
        let mut readers: std::collections::BTreeMap<String, Vec<Strategy>> = Default::default();
        for (output, strategy) in self.outputs.iter().zip(strategies) {
            for model in needed_models(&self.project, std::slice::from_ref(output)) {
                readers.entry(model).or_default().push(*strategy);
            }
        }
        readers
            .into_iter()
            .filter(|(_, s)| s.len() > 1 && s.iter().all(|s| *s == Strategy::InMemory))
            .map(|(model, _)| model)
            .collect()
    }

    /// The models the selected outputs read (directly or upstream), in dependency order.
    pub fn needed_models(&self) -> Vec<String> {
        let needed = needed_models(&self.project, &self.outputs);
        self.project.order.iter().filter(|n| needed.contains(*n)).cloned().collect()
    }

    /// The sources those models read, by name.
    pub fn needed_sources(&self) -> Vec<String> {
        needed_sources(&self.project, &self.outputs)
    }

    /// The sources and models the selected outputs read: what their tests cover.
    pub fn needed_relations(&self) -> Vec<String> {
        self.needed_sources().into_iter().chain(self.needed_models()).collect()
    }

    /// The sources and models read by the selected outputs that write (`writes`, one flag per
    /// output: an incremental output with nothing new writes nothing, so its inputs are not
    /// tested).
    pub fn relations_read_by(&self, writes: &[bool]) -> Vec<String> {
        let outputs: Vec<OutputConfig> =
            self.outputs.iter().zip(writes).filter(|(_, w)| **w).map(|(o, _)| o.clone()).collect();
        let models = needed_models(&self.project, &outputs);
        let mut relations = needed_sources(&self.project, &outputs);
        relations.extend(self.project.order.iter().filter(|n| models.contains(*n)).cloned());
        relations
    }

    /// Whether every selected output of `model` filters rows by its row-level tests.
    pub fn filters_rows(&self, model: &str) -> bool {
        let mut outputs = self.outputs.iter().filter(|o| o.model == model).peekable();
        outputs.peek().is_some() && outputs.all(|o| o.on_invalid != crate::config::OnInvalid::Fail)
    }

    /// Makes `name` readable in the session: registers a source the selection did not need; a
    /// model outside the selection is an error.
    pub async fn ensure_registered(&self, name: &str) -> Result<()> {
        if self.ctx.table_exist(TableReference::bare(name)).unwrap_or(false) {
            return Ok(());
        }
        match self.project.config.sources.get(name) {
            Some(source) => sources::register(&self.ctx, source).await.map(|_| ()),
            None => Err(Error::Usage(format!(
                "model `{name}` is not in this selection, but a test reads it; select it too (e.g. -s +{name})"
            ))),
        }
    }

    /// Computes `models` once where they fit in `cap` bytes and re-plans the views that read
    /// them; the bytes now held, which the targets' own pools must leave room for.
    pub async fn materialize(&self, models: &BTreeSet<String>, cap: u64) -> Result<u64> {
        if !models.is_empty() {
            self.register_models(models, cap).await?;
        }
        Ok(self.held.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|h| h.reservation.size() as u64).sum())
    }
}

/// The values of `$start`/`$end` (the span from `begin` to the end of the current grain) and
/// `$last` (NULL) each incremental output's model is first planned with.
fn run_bound(outputs: &[OutputConfig], now: chrono::NaiveDateTime) -> BTreeMap<String, HashMap<String, ScalarValue>> {
    use crate::config::incremental::{IncrementalSpec, step, truncate};
    let mut out = BTreeMap::new();
    for o in outputs {
        let values = match &o.incremental {
            Some(IncrementalSpec::Time { grain, begin, .. }) => {
                crate::engine::incremental::window_params(*begin, step(truncate(now, *grain), *grain, 1))
            }
            Some(IncrementalSpec::Cursor { .. }) => HashMap::from([("last".to_string(), ScalarValue::Null)]),
            _ => continue,
        };
        out.insert(o.model.clone(), values);
    }
    out
}

/// The sources the outputs' models (and everything upstream) read, by name.
fn needed_sources(project: &Project, outputs: &[OutputConfig]) -> Vec<String> {
    let needed = needed_models(project, outputs);
    let sources: BTreeSet<&String> = needed.iter().flat_map(|m| project.models[m].source_deps.iter()).collect();
    sources.into_iter().cloned().collect()
}

/// The outputs' models and everything upstream of them.
fn needed_models(project: &Project, outputs: &[OutputConfig]) -> BTreeSet<String> {
    let mut needed = BTreeSet::new();
    let mut stack: Vec<String> = outputs.iter().map(|o| o.model.clone()).collect();
    while let Some(name) = stack.pop() {
        if needed.insert(name.clone()) {
            stack.extend(project.models[&name].model_deps.iter().cloned());
        }
    }
    needed
}

/// `df` with DataFusion's analyzer run over its plan, so that the model's schema is the one its
/// rows come with. A SQL plan is typed before the analyzer coerces it: a `UNION` of an integer
/// and a float column has the first branch's type until its branches are cast to their common
/// type, and a target created from the unanalyzed schema would cast the rows back, cutting
/// 10.75 to 10.
fn analyzed(df: datafusion::prelude::DataFrame) -> std::result::Result<datafusion::prelude::DataFrame, String> {
    let (state, plan) = df.into_parts();
    let plan =
        state.analyzer().execute_and_check(plan, state.config_options(), |_, _| {}).map_err(|e| df_message(&e))?;
    Ok(datafusion::prelude::DataFrame::new(state, plan))
}
