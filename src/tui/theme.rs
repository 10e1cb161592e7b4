//! Console themes: `themes/*.toml`, embedded at build time, chosen by `--theme` (a built-in
//! name or a path to a `.toml` file). `NO_COLOR` strips every colour and keeps the modifiers and
//! the per-arm markers, so arms stay apart.

use std::path::Path;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// The built-in themes, by name, in the order `--help` lists them.
pub const BUILT_IN: [(&str, &str); 4] = [
    ("default", include_str!("../../themes/default.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("colorblind", include_str!("../../themes/colorblind.toml")),
];

/// The resolved styles the panels draw with.
#[derive(Clone, Debug, PartialEq)]
pub struct Theme {
    pub name: String,
    pub text: Style,
    pub dim: Style,
    pub border: Style,
    pub focus: Style,
    pub accent: Style,
    pub title: Style,
    pub good: Style,
    pub bad: Style,
    pub warn: Style,
    pub error: Style,
    pub student: Style,
    pub teacher: Style,
    pub gauge: Style,
    /// Badge styles: RUNNING, PAUSED, FROZEN, REPLAY, DONE, ERROR.
    pub running: Style,
    pub paused: Style,
    pub frozen: Style,
    pub replay: Style,
    pub done: Style,
    pub failed: Style,
    arm_styles: Vec<Style>,
    markers: Vec<char>,
    /// No colours at all (`NO_COLOR`).
    pub no_color: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: String,
    #[allow(dead_code)]
    description: Option<String>,
    colors: Colors,
    arms: Arms,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Colors {
    text: String,
    dim: String,
    border: String,
    focus: String,
    accent: String,
    title: String,
    good: String,
    bad: String,
    warn: String,
    error: String,
    student: String,
    teacher: String,
    gauge: String,
    running: String,
    paused: String,
    frozen: String,
    replay: String,
    done: String,
    failed: String,
    badge_text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Arms {
    colors: Vec<String>,
    markers: Vec<String>,
}

impl Theme {
    /// A built-in theme by name, or a theme file when `name` ends in `.toml`; errors are one
    /// sentence naming the theme (or file) and the problem.
    pub fn load(name: &str, no_color: bool) -> anyhow::Result<Theme> {
        let theme = if name.ends_with(".toml") {
            let path = Path::new(name);
            let text =
                crate::atomic::read_text_limited(path, crate::atomic::TEXT_LIMIT).map_err(|e| {
                    anyhow::anyhow!("theme file {}: cannot be read ({e})", path.display())
                })?;
            Theme::parse(&text, &format!("theme file {}", path.display()))?
        } else {
            let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                anyhow::bail!(
                    "unknown theme `{name}`: use one of {} or a path to a .toml theme file",
                    names.join(", ")
                );
            };
            Theme::parse(text, &format!("built-in theme {name}"))?
        };
        Ok(if no_color {
            theme.without_colors()
        } else {
            theme
        })
    }

    /// The default theme (always valid: the tests parse every built-in theme).
    pub fn default_theme(no_color: bool) -> Theme {
        Theme::load("default", no_color).unwrap_or_else(|_| Theme::fallback(no_color))
    }

    /// Parses a theme file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Theme> {
        let file: ThemeFile = toml::from_str(text).map_err(|e| toml_error(origin, text, &e))?;
        let c = &file.colors;
        let color = |key: &str, v: &str| -> anyhow::Result<Color> {
            v.parse::<Color>()
                .map_err(|_| anyhow::anyhow!("{origin}: `{key}` has an unknown colour `{v}`"))
        };
        let fg = |key: &str, v: &str| color(key, v).map(|c| Style::new().fg(c));
        let badge_text = color("badge_text", &c.badge_text)?;
        let badge = |key: &str, v: &str| -> anyhow::Result<Style> {
            Ok(Style::new()
                .bg(color(key, v)?)
                .fg(badge_text)
                .add_modifier(Modifier::BOLD))
        };
        if file.arms.colors.is_empty() || file.arms.markers.is_empty() {
            anyhow::bail!("{origin}: `arms.colors` and `arms.markers` need at least one entry");
        }
        let mut markers = Vec::new();
        for m in &file.arms.markers {
            let mut chars = m.chars();
            match (chars.next(), chars.next()) {
                (Some(ch), None) => markers.push(ch),
                _ => anyhow::bail!("{origin}: arm marker `{m}` must be exactly one character"),
            }
        }
        let arm_styles = file
            .arms
            .colors
            .iter()
            .map(|v| fg("arms.colors", v))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Theme {
            name: file.name,
            text: fg("text", &c.text)?,
            dim: fg("dim", &c.dim)?,
            border: fg("border", &c.border)?,
            focus: fg("focus", &c.focus)?.add_modifier(Modifier::BOLD),
            accent: fg("accent", &c.accent)?,
            title: fg("title", &c.title)?.add_modifier(Modifier::BOLD),
            good: fg("good", &c.good)?,
            bad: fg("bad", &c.bad)?,
            warn: fg("warn", &c.warn)?,
            error: fg("error", &c.error)?.add_modifier(Modifier::BOLD),
            student: fg("student", &c.student)?,
            teacher: fg("teacher", &c.teacher)?.add_modifier(Modifier::BOLD),
            gauge: fg("gauge", &c.gauge)?,
            running: badge("running", &c.running)?,
            paused: badge("paused", &c.paused)?,
            frozen: badge("frozen", &c.frozen)?,
            replay: badge("replay", &c.replay)?,
            done: badge("done", &c.done)?,
            failed: badge("failed", &c.failed)?,
            arm_styles,
            markers,
            no_color: false,
        })
    }

    /// The same theme with every colour removed (modifiers stay; badges become reversed).
    pub fn without_colors(mut self) -> Theme {
        let strip = |s: Style| {
            let mut s = s;
            s.fg = None;
            s.bg = None;
            s
        };
        for s in [
            &mut self.text,
            &mut self.dim,
            &mut self.border,
            &mut self.focus,
            &mut self.accent,
            &mut self.title,
            &mut self.good,
            &mut self.bad,
            &mut self.warn,
            &mut self.error,
            &mut self.student,
            &mut self.teacher,
            &mut self.gauge,
        ] {
            *s = strip(*s);
        }
        for s in [
            &mut self.running,
            &mut self.paused,
            &mut self.frozen,
            &mut self.replay,
            &mut self.done,
            &mut self.failed,
        ] {
            *s = strip(*s).add_modifier(Modifier::REVERSED);
        }
        for s in &mut self.arm_styles {
            *s = strip(*s);
        }
        self.no_color = true;
        self
    }

    /// The style of arm number `i` (colours repeat when there are more arms than colours).
    pub fn arm(&self, i: usize) -> Style {
        self.arm_styles
            .get(i % self.arm_styles.len().max(1))
            .copied()
            .unwrap_or_default()
    }

    /// The marker of arm number `i`: markers repeat only after every marker is used.
    pub fn marker(&self, i: usize) -> char {
        self.markers
            .get(i % self.markers.len().max(1))
            .copied()
            .unwrap_or('*')
    }

    fn fallback(no_color: bool) -> Theme {
        let t = Theme {
            name: "fallback".into(),
            text: Style::new(),
            dim: Style::new(),
            border: Style::new(),
            focus: Style::new().add_modifier(Modifier::BOLD),
            accent: Style::new(),
            title: Style::new().add_modifier(Modifier::BOLD),
            good: Style::new(),
            bad: Style::new(),
            warn: Style::new(),
            error: Style::new().add_modifier(Modifier::BOLD),
            student: Style::new(),
            teacher: Style::new().add_modifier(Modifier::BOLD),
            gauge: Style::new(),
            running: Style::new(),
            paused: Style::new(),
            frozen: Style::new(),
            replay: Style::new(),
            done: Style::new(),
            failed: Style::new(),
            arm_styles: vec![Style::new()],
            markers: vec!['o', 'x', '+', '*', '#', '@'],
            no_color,
        };
        t.without_colors()
    }
}

/// A TOML error as one sentence: origin, line and the parser's message.
pub(crate) fn toml_error(origin: &str, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
    let msg = e.message().trim().trim_end_matches('.');
    match line {
        Some(l) => anyhow::anyhow!("{origin}: line {l}: {msg}"),
        None => anyhow::anyhow!("{origin}: {msg}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_theme_parses_and_has_distinct_markers() {
        for (name, _) in BUILT_IN {
            let t = Theme::load(name, false).unwrap();
            assert_eq!(t.name, name);
            let markers: std::collections::BTreeSet<char> = (0..5).map(|i| t.marker(i)).collect();
            assert_eq!(markers.len(), 5, "{name}: five arms need five markers");
        }
    }

    #[test]
    fn no_color_removes_every_colour_but_keeps_markers() {
        let t = Theme::load("default", true).unwrap();
        assert!(t.no_color);
        assert_eq!(t.arm(0).fg, None);
        assert_eq!(t.running.bg, None);
        assert!(t.running.add_modifier.contains(Modifier::REVERSED));
        assert_ne!(t.marker(0), t.marker(1));
    }

    #[test]
    fn a_bad_theme_fails_with_one_sentence_naming_the_problem() {
        let e = Theme::load("neon", false).unwrap_err().to_string();
        assert!(e.contains("unknown theme `neon`"), "{e}");
        let bad = BUILT_IN[0]
            .1
            .replace("text = \"white\"", "text = \"whiteish\"");
        let e = Theme::parse(&bad, "theme file x.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "theme file x.toml: `text` has an unknown colour `whiteish`"
        );
        let e = Theme::parse("name = 3", "theme file y.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("theme file y.toml: line 1:"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = Theme::load("/nonexistent/t.toml", false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("theme file /nonexistent/t.toml: cannot be read"));
    }
}
