//! `{{ name }}` templating for matrix values (and, later, values captured by
//! flow steps), on minijinja: undefined variables are errors, nothing is
//! auto-escaped (the output is a URL, a header or a JSON string, not HTML),
//! and fuel bounds the work a template may do.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};

pub type Vars = BTreeMap<String, String>;

/// Enough for any substitution template, far too little for a runaway loop.
const FUEL: u64 = 50_000;

pub struct Templater {
    env: Environment<'static>,
}

impl Default for Templater {
    fn default() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_fuel(Some(FUEL));
        Templater { env }
    }
}

impl Templater {
    /// Variables the template uses, so a reference to one nobody defines is
    /// reported when the config loads rather than when the check runs.
    pub fn variables(&self, source: &str) -> Result<Vec<String>, String> {
        if !is_template(source) {
            return Ok(Vec::new());
        }
        let template = self
            .env
            .template_from_str(source)
            .map_err(|e| describe(&e))?;
        // Sorted: the set's order is random, and error messages should not be.
        let mut names: Vec<String> = template.undeclared_variables(false).into_iter().collect();
        names.sort();
        Ok(names)
    }

    pub fn render(&self, source: &str, vars: &Vars) -> Result<String, String> {
        if !is_template(source) {
            return Ok(source.to_owned());
        }
        self.env.render_str(source, vars).map_err(|e| describe(&e))
    }

    /// Renders every string inside a JSON value (keys are left as written).
    pub fn render_json(
        &self,
        value: &serde_json::Value,
        vars: &Vars,
    ) -> Result<serde_json::Value, String> {
        use serde_json::Value;
        Ok(match value {
            Value::String(s) => Value::String(self.render(s, vars)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render_json(v, vars))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_json(v, vars)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Every variable used by the strings inside a JSON value.
    pub fn json_variables(&self, value: &serde_json::Value) -> Result<Vec<String>, String> {
        use serde_json::Value;
        let mut found = Vec::new();
        match value {
            Value::String(s) => found.extend(self.variables(s)?),
            Value::Array(items) => {
                for v in items {
                    found.extend(self.json_variables(v)?);
                }
            }
            Value::Object(map) => {
                for v in map.values() {
                    found.extend(self.json_variables(v)?);
                }
            }
            _ => {}
        }
        Ok(found)
    }
}

fn is_template(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("template error: {detail}"),
        None => format!("template error: {}", e.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_and_lists_variables() {
        let t = Templater::default();
        let v = vars(&[("service_id", "ml-platform")]);
        assert_eq!(
            t.render("/keys/{{ service_id }}?x={{service_id}}", &v)
                .unwrap(),
            "/keys/ml-platform?x=ml-platform"
        );
        assert_eq!(
            t.variables("a {{ b }} {{ c|upper }}").unwrap(),
            vec!["b", "c"]
        );
        assert!(t.variables("plain").unwrap().is_empty());
    }

    #[test]
    fn undefined_and_broken_templates_are_errors_not_panics() {
        let t = Templater::default();
        assert!(t.render("{{ nope }}", &Vars::new()).is_err());
        for bad in [
            "{{",
            "{% for %}",
            "{{ a. }}",
            "{% for i in range(100000000) %}x{% endfor %}",
        ] {
            assert!(t.render(bad, &vars(&[("a", "1")])).is_err(), "{bad}");
        }
    }

    #[test]
    fn renders_json_string_leaves() {
        let t = Templater::default();
        let doc = serde_json::json!({"service_id": "{{ s }}", "n": 1, "list": ["{{ s }}"]});
        let out = t.render_json(&doc, &vars(&[("s", "platform")])).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"service_id": "platform", "n": 1, "list": ["platform"]})
        );
    }
}
