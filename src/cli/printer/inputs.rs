//! What `pallet run --help-inputs` and `pallet show` print of a workflow's
//! typed inputs (name, type, required or default, description), and the
//! same as JSON. Every text comes from the workflow file: shown inert.

use serde_json::{Value, json};

use super::terminal::terminal_safe;
use crate::workflow::LoadedWorkflow;

/// The inputs of `workflow` as JSON: `inputs` (and `input_schema`, the one
/// JSON Schema of the whole input) are null without an `inputs` block, and
/// `reads` lists the input names its templates read.
pub fn inputs_json(workflow: &LoadedWorkflow) -> Value {
    let model = &workflow.workflow;
    json!({
        "workflow": model.metadata.id,
        "version": model.metadata.version.to_string(),
        "inputs": model.inputs.as_ref().map(|inputs| inputs.describe()),
        "input_schema": model.inputs.as_ref().map(|inputs| inputs.object_schema()),
        "reads": model.inputs_read(),
    })
}

/// The lines of the inputs table (or what a workflow without one reads), indented by two.
pub fn inputs_lines(workflow: &LoadedWorkflow) -> Vec<String> {
    let model = &workflow.workflow;
    let Some(inputs) = &model.inputs else {
        let reads = model.inputs_read();
        let what = match reads.is_empty() {
            true => "its templates read no `workflow.input` field".to_string(),
            false => format!("its templates read: {}", reads.join(", ")),
        };
        return vec![format!(
            "  (no `inputs` block: any input is accepted; {})",
            terminal_safe(&what)
        )];
    };
    let infos = inputs.describe();
    if infos.is_empty() {
        return vec!["  (none: the workflow takes no input)".to_string()];
    }
    let rows: Vec<[String; 4]> = infos
        .iter()
        .map(|info| {
            let need = match (&info.default, info.required) {
                (Some(default), _) => format!("default {default}"),
                (None, true) => "required".to_string(),
                (None, false) => "optional".to_string(),
            };
            [
                info.name.clone(),
                info.type_name.clone(),
                need,
                info.description.clone().unwrap_or_default(),
            ]
            .map(|text| terminal_safe(&text).into_owned())
        })
        .collect();
    let header = ["NAME", "TYPE", "REQUIRED", "DESCRIPTION"].map(str::to_string);
    let widths: Vec<usize> = (0..3)
        .map(|column| {
            std::iter::once(&header)
                .chain(&rows)
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    std::iter::once(&header)
        .chain(&rows)
        .map(|row| {
            let line = format!(
                "  {:<w0$}  {:<w1$}  {:<w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
            line.trim_end().to_string()
        })
        .collect()
}

/// `pallet run --help-inputs`.
pub fn print_inputs(workflow: &LoadedWorkflow, json: bool) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(&inputs_json(workflow))?);
        return Ok(());
    }
    let metadata = &workflow.workflow.metadata;
    outln!(
        "inputs of workflow {} {}:",
        terminal_safe(&metadata.id),
        metadata.version
    );
    for line in inputs_lines(workflow) {
        outln!("{line}");
    }
    outln!(
        "give them with --input NAME=VALUE (text, or a number or boolean where the input is one), --input NAME:=JSON or --input-json FILE; the positional text is `requirements`"
    );
    Ok(())
}
