//! Globbing: which paths an input's globs match, made absolute and normalized, with the
//! directories to watch for them. Pure functions of the configuration and the directory
//! listings; no state of discovery.

use crate::config::FileInput;
use crate::event::Registry;
use crate::tailer::TailSettings;
use notify::RecursiveMode;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// One configured file input at run time.
#[derive(Debug)]
pub struct Input {
    /// Position in `inputs.files`.
    pub index: usize,
    /// Its configuration.
    pub cfg: FileInput,
    /// Every file identity it knows (open or not).
    pub registry: Arc<Registry>,
    /// Settings its tailers share.
    pub params: Arc<TailSettings>,
    /// Include globs, made absolute.
    pub includes: Vec<String>,
    /// Exclude patterns, made absolute.
    pub excludes: Vec<glob::Pattern>,
    /// Include patterns, compiled, for paths named by filesystem events.
    pub(super) include_patterns: Vec<glob::Pattern>,
    /// Per include: (directory, file-name pattern) when only the last component is a pattern.
    pub(super) single_dir: Vec<Option<(PathBuf, glob::Pattern)>>,
}

/// Removes `.` components and resolves `..` lexically (globs cannot be canonicalized).
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn absolute(pattern: &str) -> String {
    let p = Path::new(pattern);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    normalize(&abs).to_string_lossy().into_owned()
}

impl Input {
    /// Builds the run-time input from its configuration (which validation has checked, so
    /// an error here is one the pipeline's compilation found).
    pub fn new(index: usize, cfg: FileInput) -> Result<Input, String> {
        let pipeline = if cfg.processes() {
            let host = crate::agent::hostname();
            Some(Arc::new(crate::pipeline::Compiled::build(
                &cfg, index, &host,
            )?))
        } else {
            None
        };
        let params = Arc::new(TailSettings {
            poll_interval: cfg.poll_interval,
            rotate_wait: cfg.rotate_wait,
            close_inactive: cfg.close_inactive,
            max_line_bytes: cfg.max_line_bytes as usize,
            source: cfg.id_or_default(index).into(),
            pipeline,
        });
        let includes: Vec<String> = cfg.paths.iter().map(|g| absolute(g)).collect();
        let include_patterns = includes
            .iter()
            .filter_map(|g| glob::Pattern::new(g).ok())
            .collect();
        let single_dir = includes.iter().map(|g| single_dir_glob(g)).collect();
        let excludes = cfg
            .exclude
            .iter()
            .filter_map(|g| glob::Pattern::new(&absolute(g)).ok())
            .collect();
        Ok(Input {
            index,
            cfg,
            registry: Arc::new(Registry::default()),
            params,
            includes,
            excludes,
            include_patterns,
            single_dir,
        })
    }

    pub(super) fn excluded(&self, path: &Path) -> bool {
        self.excludes.iter().any(|p| p.matches_path(path))
    }

    /// The files the globs match now, excluded ones removed.
    pub fn matched(&self) -> Vec<PathBuf> {
        self.candidates(true, &|_| false)
            .into_iter()
            .map(|c| c.path)
            .collect()
    }

    /// Like `matched`, with what the directory listing told about each entry. Without
    /// `walk_trees`, globs that need a directory walk are skipped (their new files arrive as
    /// filesystem events), and so are single directories for which `unchanged` says so.
    pub(super) fn candidates(
        &self,
        walk_trees: bool,
        unchanged: &dyn Fn(&Path) -> bool,
    ) -> Vec<Candidate> {
        let mut all = Vec::new();
        for (g, fast) in self.includes.iter().zip(&self.single_dir) {
            if let Some((dir, name)) = fast {
                if !walk_trees && unchanged(dir) {
                    continue;
                }
                // Only the file name is a pattern: one readdir, no per-entry allocation for
                // names that do not match (the common `/var/log/app/*.log` case).
                if let Ok(rd) = std::fs::read_dir(dir) {
                    for e in rd.flatten() {
                        let n = e.file_name();
                        if n.to_str().is_some_and(|s| name.matches(s)) {
                            let path = e.path();
                            if !self.excluded(&path) {
                                let plain = e.file_type().is_ok_and(|t| t.is_file());
                                all.push(Candidate { path, plain });
                            }
                        }
                    }
                }
                continue;
            }
            if !walk_trees {
                continue;
            }
            if let Ok(paths) = glob::glob(g) {
                // Entries that vanish or cannot be read mid-walk are simply not matched.
                all.extend(
                    paths
                        .flatten()
                        .filter(|p| !self.excluded(p))
                        .map(|path| Candidate { path, plain: false }),
                );
            }
        }
        if self.includes.len() > 1 {
            // Byte order is enough to drop duplicates, and much cheaper than Path's order.
            all.sort_unstable_by(|a, b| a.path.as_os_str().cmp(b.path.as_os_str()));
            all.dedup_by(|a, b| a.path == b.path);
        }
        all
    }

    pub(super) fn matches(&self, path: &Path) -> bool {
        let opts = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        !self.excluded(path)
            && self
                .include_patterns
                .iter()
                .any(|p| p.matches_path_with(path, opts))
    }

    /// Directories to watch for events: each glob's fixed prefix, recursive when the glob
    /// has wildcards in its directory part.
    pub(super) fn watch_roots(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let mut roots = Vec::new();
        for g in &self.includes {
            let mut base = PathBuf::new();
            let comps: Vec<_> = Path::new(g).components().collect();
            let mut wild_at = comps.len();
            for (i, c) in comps.iter().enumerate() {
                let s = c.as_os_str().to_string_lossy();
                if s.contains(['*', '?', '[', '{']) {
                    wild_at = i;
                    break;
                }
                base.push(c.as_os_str());
            }
            if wild_at == comps.len() {
                // A literal path: watch its directory.
                base.pop();
                roots.push((base, RecursiveMode::NonRecursive));
            } else {
                let mode = if wild_at + 1 < comps.len() {
                    RecursiveMode::Recursive
                } else {
                    RecursiveMode::NonRecursive
                };
                roots.push((base, mode));
            }
        }
        roots
    }
}

/// A path the globs matched.
pub(super) struct Candidate {
    pub(super) path: PathBuf,
    /// The listing says it is a regular file (not a link): its identity changes only through
    /// events on its own directory.
    pub(super) plain: bool,
}

fn is_wild(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// `(dir, pattern)` for a glob whose only wildcards are in its last component.
pub(super) fn single_dir_glob(g: &str) -> Option<(PathBuf, glob::Pattern)> {
    let p = Path::new(g);
    let name = p.file_name()?.to_str()?;
    let dir = p.parent()?;
    if !is_wild(name) || is_wild(&dir.to_string_lossy()) || name == "**" {
        return None;
    }
    Some((dir.to_path_buf(), glob::Pattern::new(name).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(paths: &[&str], exclude: &[&str]) -> Input {
        let yaml = format!(
            "inputs:\n  files:\n    - paths: {paths:?}\n      exclude: {exclude:?}\n      checkpoint_path: /tmp/ck\n"
        );
        let cfg = crate::config::Config::parse(&yaml, &|_| None).unwrap();
        Input::new(0, cfg.inputs.files[0].clone()).unwrap()
    }

    #[test]
    fn normalize_removes_dots_lexically() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/a/b/")), PathBuf::from("/a/b"));
    }

    #[test]
    fn single_directory_globs_are_told_apart_from_trees() {
        let (dir, pat) = single_dir_glob("/var/log/app/*.log").unwrap();
        assert_eq!(dir, PathBuf::from("/var/log/app"));
        assert!(pat.matches("a.log") && !pat.matches("a.log.1"));
        assert!(single_dir_glob("/var/log/**/*.log").is_none());
        assert!(single_dir_glob("/var/log/*/x.log").is_none());
        assert!(single_dir_glob("/var/log/app.log").is_none(), "no wildcard");
    }

    #[test]
    fn matches_respects_separators_and_excludes() {
        let i = input(&["/l/*.log", "/t/**/*.log"], &["/l/skip-*.log"]);
        assert!(i.matches(Path::new("/l/a.log")));
        assert!(!i.matches(Path::new("/l/sub/a.log")), "* does not cross /");
        assert!(!i.matches(Path::new("/l/skip-1.log")));
        assert!(i.matches(Path::new("/t/x/y/z.log")));
        assert!(i.excluded(Path::new("/l/skip-2.log")));
    }

    #[test]
    fn watch_roots_are_fixed_prefixes_recursive_only_for_trees() {
        let i = input(&["/l/*.log", "/t/**/*.log", "/f/app.log"], &[]);
        let roots = i.watch_roots();
        assert!(roots.contains(&(PathBuf::from("/l"), RecursiveMode::NonRecursive)));
        assert!(roots.contains(&(PathBuf::from("/t"), RecursiveMode::Recursive)));
        assert!(roots.contains(&(PathBuf::from("/f"), RecursiveMode::NonRecursive)));
    }
}
