//! What templates may use: the helpers pallet registers, no partials or
//! decorators, and a bound on nesting checked before handlebars parses.

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};

use super::compile::path_text;

/// Helper names a bare `{{ name }}` calls instead of reading a value, as handlebars does.
pub(super) const HELPER_NAMES: [&str; 17] = [
    "if", "unless", "each", "with", "lookup", "raw", "log", "len", "eq", "ne", "gt", "gte", "lt",
    "lte", "and", "or", "not",
];

/// What a template that parses may still not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disallowed {
    Partials,
    Decorators,
    /// A helper pallet does not register: it would fail only when rendered.
    UnknownHelper(String),
}

impl std::fmt::Display for Disallowed {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Disallowed::Partials => formatter.write_str("partials are not allowed in templates"),
            Disallowed::Decorators => {
                formatter.write_str("inline partials and decorators are not allowed in templates")
            }
            Disallowed::UnknownHelper(name) => write!(formatter, "unknown helper `{name}`"),
        }
    }
}

/// The hint for every [`Disallowed`] construct: what templates may use.
pub fn allowed_helpers_hint() -> String {
    format!(
        "templates may only read values and call the helpers {}",
        HELPER_NAMES.join(", ")
    )
}

/// The first construct templates may not use, if any.
pub fn disallowed(elements: &[TemplateElement]) -> Option<Disallowed> {
    elements.iter().find_map(|element| match element {
        TemplateElement::PartialExpression(_) | TemplateElement::PartialBlock(_) => {
            Some(Disallowed::Partials)
        }
        TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
            Some(Disallowed::Decorators)
        }
        TemplateElement::Expression(helper) | TemplateElement::HtmlExpression(helper) => {
            unknown_helper(helper, false)
        }
        TemplateElement::HelperBlock(helper) => unknown_helper(helper, true).or_else(|| {
            [&helper.template, &helper.inverse]
                .into_iter()
                .flatten()
                .find_map(|block| disallowed(&block.elements))
        }),
        _ => None,
    })
}

/// A call (a block, or a name with arguments) of a helper pallet does not
/// register, here or in a subexpression.
fn unknown_helper(helper: &HelperTemplate, block: bool) -> Option<Disallowed> {
    let calls = block || !helper.params.is_empty() || !helper.hash.is_empty();
    let name = helper.name.as_name().or(match &helper.name {
        Parameter::Path(path) if calls => Some(path_text(path)),
        _ => None,
    });
    if calls
        && let Some(name) = name
        && !HELPER_NAMES.contains(&name)
    {
        return Some(Disallowed::UnknownHelper(name.to_string()));
    }
    helper
        .params
        .iter()
        .chain(helper.hash.values())
        .find_map(|parameter| match parameter {
            Parameter::Subexpression(inner) => match inner.as_element() {
                TemplateElement::Expression(helper) => unknown_helper(helper, false),
                _ => None,
            },
            _ => None,
        })
}

/// Deepest nesting of blocks and of subexpressions in one template.
pub const MAX_TEMPLATE_NESTING: usize = 32;

/// Whether blocks (`{{#each}}`, `{{else if}}` chains) or subexpressions
/// `( )` nest deeper than [`MAX_TEMPLATE_NESTING`]: checked on the text, before
/// handlebars' recursive parser and every recursive walk over the template.
pub fn too_deep(text: &str) -> bool {
    let mut blocks = 0usize;
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after.find("}}").unwrap_or(after.len());
        let expression = after[..close]
            .trim_start_matches(['{', '~', '&'])
            .trim_start();
        let opens = expression.starts_with('#')
            || expression.starts_with("else ")
            || (expression.starts_with('^') && expression.len() > 1);
        if opens {
            blocks += 1;
        } else if expression.starts_with('/') {
            blocks = blocks.saturating_sub(1);
        }
        if blocks > MAX_TEMPLATE_NESTING || parentheses_depth(expression) > MAX_TEMPLATE_NESTING {
            return true;
        }
        rest = &after[close.min(after.len())..];
    }
    false
}

/// Deepest `( )` nesting of one expression, outside quoted strings.
fn parentheses_depth(expression: &str) -> usize {
    let (mut depth, mut deepest, mut quote) = (0usize, 0usize, None);
    for character in expression.chars() {
        match (quote, character) {
            (Some(open), _) if character == open => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(character),
            (None, '(') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ')') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}
