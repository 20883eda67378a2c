//! Compiles a project into one DataFusion session: the selected outputs' sources become
//! listing tables and their models become views, in dependency order, so that each output is a
//! single logical plan from the files to the sink.

use std::collections::BTreeSet;

use datafusion::common::TableReference;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;

use crate::config::OutputConfig;
use crate::error::{Error, Result, df_message};
use crate::memory::MemoryBudget;
use crate::project::{Project, Selection};
use crate::{session, sources};

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
}

impl Pipeline {
    /// Selects outputs, builds the session, registers what they need. Every source is checked
    /// here, before anything runs.
    pub async fn prepare(project: Project, selection: &Selection) -> Result<Pipeline> {
        let outputs = project.selected_outputs(selection)?;
        let budget = MemoryBudget::measure(&project.config.memory);
        let ctx = session::build(&project.config, &budget)?;

        let needed = needed_models(&project, &outputs);
        let needed_sources: BTreeSet<&String> =
            needed.iter().flat_map(|m| project.models[m].source_deps.iter()).collect();
        for name in needed_sources {
            sources::register(&ctx, &project.config.sources[name]).await?;
        }
        let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        for name in project.order.iter().filter(|n| needed.contains(*n)) {
            let model = &project.models[name];
            let df = ctx.sql_with_options(&model.sql, options).await.map_err(|e| {
                Error::Project(format!("model `{name}` ({}): {}", model.file.display(), df_message(&e)))
            })?;
            ctx.register_table(TableReference::bare(name.as_str()), df.into_view())
                .map_err(|e| Error::Project(format!("model `{name}`: {}", df_message(&e))))?;
        }
        Ok(Pipeline { project, outputs, budget, ctx })
    }
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
