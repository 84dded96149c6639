//! `kubernetes: true`: namespace, pod, pod uid and container from the kubelet's log paths,
//! `/var/log/pods/<namespace>_<pod>_<uid>/<container>/N.log` and
//! `/var/log/containers/<pod>_<namespace>_<container>-<id>.log`.

use crate::record::{Map, Value};
use std::path::Path;

/// The `kubernetes` object (namespace, pod, pod_uid where known, container) for a pod log
/// path, also through symlinks; `None` when the path is neither layout.
pub fn fields_from_path(path: &Path) -> Option<Map> {
    if let Some(m) = from_components(path) {
        return Some(m);
    }
    // /var/log/containers holds links into /var/log/pods; other links may lead there too.
    let real = std::fs::canonicalize(path).ok()?;
    if real == path {
        return None;
    }
    from_components(&real)
}

fn from_components(path: &Path) -> Option<Map> {
    let mut rev = path.iter().rev().map(|c| c.to_str());
    let file = rev.next()??;
    let parent = rev.next()??;
    if parent == "containers"
        && let Some(m) = containers_layout(file)
    {
        return Some(m);
    }
    let dir = rev.next()??;
    if rev.next()?? == "pods" {
        return pods_layout(dir, parent, file);
    }
    None
}

/// `<namespace>_<pod>_<uid>/<container>/N.log`, also rotated (`N.log.20241201-101010`,
/// `.gz`).
fn pods_layout(dir: &str, container: &str, file: &str) -> Option<Map> {
    let digits = file.bytes().take_while(u8::is_ascii_digit).count();
    let rest = file[digits..].strip_prefix(".log")?;
    if digits == 0 || !(rest.is_empty() || rest.starts_with('.')) {
        return None;
    }
    let mut parts = dir.split('_');
    let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !valid(&[namespace, pod, uid, container]) {
        return None;
    }
    Some(object(namespace, pod, Some(uid), container))
}

/// `<pod>_<namespace>_<container>-<64 hex>.log`.
fn containers_layout(file: &str) -> Option<Map> {
    let (rest, id) = file.strip_suffix(".log")?.rsplit_once('-')?;
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut parts = rest.split('_');
    let (pod, namespace, container) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !valid(&[namespace, pod, container]) {
        return None;
    }
    Some(object(namespace, pod, None, container))
}

fn valid(names: &[&str]) -> bool {
    names.iter().all(|n| !n.is_empty())
}

fn object(namespace: &str, pod: &str, uid: Option<&str>, container: &str) -> Map {
    let mut k = Map::with_capacity(4);
    k.insert("namespace", Value::Str(namespace.into()));
    k.insert("pod", Value::Str(pod.into()));
    if let Some(uid) = uid {
        k.insert("pod_uid", Value::Str(uid.into()));
    }
    k.insert("container", Value::Str(container.into()));
    let mut m = Map::with_capacity(1);
    m.insert("kubernetes", Value::Object(k));
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const UID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    const ID: &str = "4c5d1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";

    fn fields(path: &str) -> Option<Vec<(String, String)>> {
        let m = fields_from_path(Path::new(path))?;
        assert_eq!(m.len(), 1);
        let Some(Value::Object(k)) = m.get("kubernetes") else {
            panic!("{m:?}");
        };
        Some(
            k.iter()
                .map(|(n, v)| match v {
                    Value::Str(s) => (n.to_string(), s.clone()),
                    other => panic!("{other:?}"),
                })
                .collect(),
        )
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn pods_layout_with_rotated_names() {
        let want = pairs(&[
            ("namespace", "kube-system"),
            ("pod", "coredns-5d78c9869d-abcde"),
            ("pod_uid", UID),
            ("container", "coredns"),
        ]);
        for file in [
            "0.log",
            "12.log",
            "0.log.20241201-101010",
            "0.log.20241201-101010.gz",
        ] {
            let p =
                format!("/var/log/pods/kube-system_coredns-5d78c9869d-abcde_{UID}/coredns/{file}");
            assert_eq!(fields(&p), Some(want.clone()), "{p}");
            let p = format!(
                "/tmp/x/var/log/pods/kube-system_coredns-5d78c9869d-abcde_{UID}/coredns/{file}"
            );
            assert_eq!(fields(&p), Some(want.clone()), "{p}");
        }
    }

    #[test]
    fn containers_layout() {
        let p = format!("/var/log/containers/web-7f9c-xk2p_shop_nginx-proxy-{ID}.log");
        assert_eq!(
            fields(&p),
            Some(pairs(&[
                ("namespace", "shop"),
                ("pod", "web-7f9c-xk2p"),
                ("container", "nginx-proxy"),
            ]))
        );
    }

    #[test]
    fn other_paths_do_not_match() {
        for p in [
            "/var/log/syslog".to_string(),
            "/".to_string(),
            "pods".to_string(),
            "/var/log/pods/ns_pod/c/0.log".to_string(),
            format!("/var/log/pods/ns_pod_{UID}_x/c/0.log"),
            format!("/var/log/pods/ns__{UID}/c/0.log"),
            format!("/var/log/pods/ns_pod_{UID}/c/app.log"),
            format!("/var/log/pods/ns_pod_{UID}/c/0.logx"),
            format!("/var/log/pods/ns_pod_{UID}/0.log"),
            format!("/var/log/containers/pod_ns_c-{}.log", &ID[..63]),
            format!("/var/log/containers/pod_ns_c-{}.log", ID.replace('4', "g")),
            format!("/var/log/containers/pod_ns-{ID}.log"),
            format!("/var/log/containers/a_b_c_d-{ID}.log"),
            format!("/var/log/containers/pod_ns_c-{ID}.txt"),
            format!("/var/log/other/pod_ns_c-{ID}.log"),
        ] {
            assert_eq!(fields(&p), None, "{p}");
        }
    }

    #[test]
    fn symlinks_are_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir: PathBuf = tmp
            .path()
            .join(format!("var/log/pods/prod_api-0_{UID}/app"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("0.log"), b"x\n").unwrap();
        let links = tmp.path().join("links");
        std::fs::create_dir_all(&links).unwrap();
        // A link whose own name says nothing: only its target does.
        let link = links.join("current.log");
        std::os::unix::fs::symlink(dir.join("0.log"), &link).unwrap();
        assert_eq!(
            fields(link.to_str().unwrap()),
            Some(pairs(&[
                ("namespace", "prod"),
                ("pod", "api-0"),
                ("pod_uid", UID),
                ("container", "app"),
            ]))
        );
        // A /var/log/containers link is read from its name (no uid there).
        let containers = tmp.path().join("var/log/containers");
        std::fs::create_dir_all(&containers).unwrap();
        let link = containers.join(format!("api-0_prod_app-{ID}.log"));
        std::os::unix::fs::symlink(dir.join("0.log"), &link).unwrap();
        assert_eq!(fields(link.to_str().unwrap()).unwrap().len(), 3);
        let dangling = links.join("gone.log");
        std::os::unix::fs::symlink(tmp.path().join("nowhere"), &dangling).unwrap();
        assert_eq!(fields(dangling.to_str().unwrap()), None);
    }
}
