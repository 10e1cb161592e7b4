//! Key bindings: defaults from [`Action::spec`], overridden by a `keys.toml`
//! (`[keys] pause = "p"`, `quit = ["q", "ctrl+c"]`). The same table drives the key handling,
//! the hint bar and the `?` help, so they never disagree.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;

use super::action::{Action, Mode};

/// One key with its modifiers (Ctrl and Alt; Shift only matters for non-character keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
}

impl KeySpec {
    /// Parses `space`, `tab`, `shift+tab`, `enter`, `esc`, `up`, `f1`, `ctrl+c`, `?`, `+`, ...
    pub fn parse(s: &str) -> Result<KeySpec, String> {
        let lower = s.trim().to_ascii_lowercase();
        if lower.is_empty() {
            return Err("an empty key".into());
        }
        let (mut ctrl, mut alt, mut shift) = (false, false, false);
        let mut rest = lower.as_str();
        // A lone "+" (or "ctrl++") is the plus key, not a separator.
        while let Some((m, tail)) = rest
            .split_once('+')
            .filter(|(m, t)| !m.is_empty() && !t.is_empty())
        {
            match m {
                "ctrl" | "control" => ctrl = true,
                "alt" | "meta" => alt = true,
                "shift" => shift = true,
                _ => return Err(format!("unknown modifier `{m}` in key `{s}`")),
            }
            rest = tail;
        }
        let code = match rest {
            "space" => KeyCode::Char(' '),
            "tab" if shift => KeyCode::BackTab,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "enter" | "return" => KeyCode::Enter,
            "esc" | "escape" => KeyCode::Esc,
            "backspace" => KeyCode::Backspace,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pageup" => KeyCode::PageUp,
            "pagedown" => KeyCode::PageDown,
            f if f.len() > 1 && f.starts_with('f') && f[1..].parse::<u8>().is_ok() => {
                KeyCode::F(f[1..].parse::<u8>().unwrap_or(1))
            }
            _ => {
                // Single characters keep their case as written in the file.
                let original: Vec<char> = s.trim().chars().collect();
                let last = original.last().copied().unwrap_or(' ');
                if rest.chars().count() != 1 {
                    return Err(format!("unknown key `{s}`"));
                }
                KeyCode::Char(if shift {
                    last.to_ascii_uppercase()
                } else {
                    last
                })
            }
        };
        Ok(KeySpec { code, ctrl, alt })
    }

    /// Whether a terminal key event is this key.
    pub fn matches(&self, key: &KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let code = match key.code {
            // Some terminals report shift+tab as Tab with SHIFT.
            KeyCode::Tab if key.modifiers.contains(KeyModifiers::SHIFT) => KeyCode::BackTab,
            c => c,
        };
        code == self.code && ctrl == self.ctrl && alt == self.alt
    }

    /// Short label for the hint bar and help: `␣`, `tab`, `ctrl+c`, `?`.
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Tab => "tab".into(),
            KeyCode::BackTab => "shift+tab".into(),
            KeyCode::Enter => "enter".into(),
            KeyCode::Esc => "esc".into(),
            KeyCode::Backspace => "backspace".into(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::Home => "home".into(),
            KeyCode::End => "end".into(),
            KeyCode::PageUp => "pgup".into(),
            KeyCode::PageDown => "pgdn".into(),
            KeyCode::F(n) => format!("f{n}"),
            other => format!("{other:?}").to_lowercase(),
        };
        let mut out = String::new();
        if self.ctrl {
            out.push_str("ctrl+");
        }
        if self.alt {
            out.push_str("alt+");
        }
        out.push_str(&base);
        out
    }
}

/// The action bound to every key.
#[derive(Clone, Debug, PartialEq)]
pub struct Keymap {
    bindings: Vec<(Action, Vec<KeySpec>)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: BTreeMap<String, OneOrMany>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl Default for Keymap {
    fn default() -> Self {
        Keymap {
            bindings: Action::ALL
                .iter()
                .map(|&a| {
                    let keys = a
                        .spec()
                        .default_keys
                        .iter()
                        .filter_map(|k| KeySpec::parse(k).ok())
                        .collect();
                    (a, keys)
                })
                .collect(),
        }
    }
}

impl Keymap {
    /// The keymap file to read: `explicit`, else `keys.toml` in the crossadapt config dir when
    /// it exists.
    pub fn resolve_path(explicit: Option<&Path>) -> Option<PathBuf> {
        if let Some(p) = explicit {
            return Some(p.to_path_buf());
        }
        let dirs = directories::ProjectDirs::from("", "", "crossadapt")?;
        let p = dirs.config_dir().join("keys.toml");
        p.is_file().then_some(p)
    }

    /// Defaults, overridden by `path` when given; errors are one sentence naming the file.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Keymap> {
        let Some(path) = path else {
            return Ok(Keymap::default());
        };
        let origin = format!("keymap file {}", path.display());
        let text = crate::atomic::read_text_limited(path, crate::atomic::TEXT_LIMIT)
            .map_err(|e| anyhow::anyhow!("{origin}: cannot be read ({e})"))?;
        Keymap::parse(&text, &origin)
    }

    /// Parses a keymap file's text over the defaults.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Keymap> {
        let file: KeysFile =
            toml::from_str(text).map_err(|e| super::theme::toml_error(origin, text, &e))?;
        let mut map = Keymap::default();
        for (name, keys) in file.keys {
            let Some(action) = Action::ALL.iter().copied().find(|a| a.spec().name == name) else {
                let known: Vec<&str> = Action::ALL.iter().map(|a| a.spec().name).collect();
                anyhow::bail!(
                    "{origin}: unknown action `{name}` (known: {})",
                    known.join(", ")
                );
            };
            let keys = match keys {
                OneOrMany::One(k) => vec![k],
                OneOrMany::Many(ks) => ks,
            };
            if keys.is_empty() {
                anyhow::bail!("{origin}: action `{name}` needs at least one key");
            }
            let parsed = keys
                .iter()
                .map(|k| KeySpec::parse(k))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("{origin}: action `{name}`: {e}"))?;
            if let Some(slot) = map.bindings.iter_mut().find(|(a, _)| *a == action) {
                slot.1 = parsed;
            }
        }
        map.check_conflicts(origin)?;
        Ok(map)
    }

    fn check_conflicts(&self, origin: &str) -> anyhow::Result<()> {
        for (i, (a, keys)) in self.bindings.iter().enumerate() {
            for (b, other) in &self.bindings[i + 1..] {
                if let Some(k) = keys.iter().find(|k| other.contains(k)) {
                    anyhow::bail!(
                        "{origin}: key `{}` is bound to both `{}` and `{}`",
                        k.label(),
                        a.spec().name,
                        b.spec().name
                    );
                }
            }
        }
        Ok(())
    }

    /// The action a key triggers in `mode`, if any.
    pub fn action_for(&self, key: &KeyEvent, mode: Mode) -> Option<Action> {
        self.bindings
            .iter()
            .find(|(a, keys)| a.spec().scope.includes(mode) && keys.iter().any(|k| k.matches(key)))
            .map(|(a, _)| *a)
    }

    /// The keys bound to `action`.
    pub fn keys(&self, action: Action) -> &[KeySpec] {
        self.bindings
            .iter()
            .find(|(a, _)| *a == action)
            .map(|(_, k)| k.as_slice())
            .unwrap_or(&[])
    }

    /// `space`, `q/ctrl+c`: the keys of an action as one label.
    pub fn label(&self, action: Action) -> String {
        let keys: Vec<String> = self.keys(action).iter().map(KeySpec::label).collect();
        keys.join("/")
    }

    /// `(keys, label)` of the hint-bar actions in `mode`, in order.
    pub fn hints(&self, mode: Mode) -> Vec<(String, &'static str)> {
        Action::ALL
            .iter()
            .filter(|a| a.spec().scope.includes(mode))
            .filter_map(|&a| {
                let hint = a.spec().hint?;
                let key = self.keys(a).first()?.label();
                Some((key, hint))
            })
            .collect()
    }

    /// `(keys, description)` of every action offered in `mode`, for the `?` help.
    pub fn help_rows(&self, mode: Mode) -> Vec<(String, &'static str)> {
        Action::ALL
            .iter()
            .filter(|a| a.spec().scope.includes(mode))
            .map(|&a| (self.label(a), a.describe(mode)))
            .collect()
    }
}

/// The keymap as a text table (README, `?` help): live keys, then replay-only keys.
pub fn keymap_text(keymap: &Keymap) -> String {
    let mut out = String::new();
    let rows = keymap.help_rows(Mode::Live);
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let _ = writeln!(out, "Live session:");
    for (keys, what) in &rows {
        let _ = writeln!(out, "  {keys:<width$}  {what}");
    }
    let _ = writeln!(
        out,
        "Replay (also: freeze, focus, zoom, summary, help, quit):"
    );
    for a in Action::ALL
        .iter()
        .filter(|a| a.spec().scope == super::action::Scope::Replay || **a == Action::Pause)
    {
        let keys = keymap.label(*a);
        let _ = writeln!(out, "  {keys:<width$}  {}", a.describe(Mode::Replay));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn default_keys_map_to_actions_per_mode() {
        let k = Keymap::default();
        assert_eq!(
            k.action_for(&key(KeyCode::Char(' ')), Mode::Live),
            Some(Action::Pause)
        );
        assert_eq!(
            k.action_for(&key(KeyCode::Char('s')), Mode::Live),
            Some(Action::Checkpoint)
        );
        assert_eq!(k.action_for(&key(KeyCode::Char('s')), Mode::Replay), None);
        assert_eq!(
            k.action_for(&key(KeyCode::Char(']')), Mode::Replay),
            Some(Action::NextDay)
        );
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(k.action_for(&ctrl_c, Mode::Live), Some(Action::Quit));
        // `?` and `+` arrive with SHIFT on many terminals.
        let shifted = KeyEvent::new(KeyCode::Char('?'), KeyModifiers::SHIFT);
        assert_eq!(k.action_for(&shifted, Mode::Live), Some(Action::Help));
        let backtab = KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT);
        assert_eq!(k.action_for(&backtab, Mode::Live), Some(Action::FocusPrev));
    }

    #[test]
    fn a_keys_file_overrides_defaults() {
        let k = Keymap::parse("[keys]\npause = \"p\"\nquit = [\"x\", \"ctrl+q\"]\n", "t").unwrap();
        assert_eq!(
            k.action_for(&key(KeyCode::Char('p')), Mode::Live),
            Some(Action::Pause)
        );
        assert_eq!(k.action_for(&key(KeyCode::Char(' ')), Mode::Live), None);
        assert_eq!(k.label(Action::Quit), "x/ctrl+q");
        assert_eq!(k.hints(Mode::Live)[0], ("p".to_string(), "pause"));
    }

    #[test]
    fn a_bad_keys_file_fails_with_one_sentence_naming_file_and_problem() {
        let origin = "keymap file /tmp/keys.toml";
        let e = Keymap::parse("[keys]\npaws = \"p\"\n", origin)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("keymap file /tmp/keys.toml: unknown action `paws`"),
            "{e}"
        );
        let e = Keymap::parse("[keys]\npause = \"hyper+p\"\n", origin)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown modifier `hyper`"), "{e}");
        let e = Keymap::parse("[keys]\npause = \"f\"\n", origin)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "keymap file /tmp/keys.toml: key `f` is bound to both `pause` and `freeze`"
        );
        let e = Keymap::parse("[keys\n", origin).unwrap_err().to_string();
        assert!(e.starts_with("keymap file /tmp/keys.toml: line 1:"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn keymap_text_lists_every_live_action() {
        let text = keymap_text(&Keymap::default());
        assert!(text.contains("space"));
        assert!(text.contains("checkpoint at the next safe point"));
        assert!(text.contains("jump to the next online day"));
    }
}
