//! Runs the README's "Sharing a shelf with Python" example: its two Python
//! blocks through the real `python3`, and its Rust block, which is kept
//! here word for word (the test checks that the two have not drifted).

use shelf::Value;
use shelf_tests::python::Python;

const README: &str = include_str!("../../README.md");
const THIS_FILE: &str = include_str!("readme_python.rs");

/// The fenced blocks of the README's Python section, in order.
fn section_blocks() -> Vec<(String, String)> {
    let start = README.find("## Sharing a shelf with Python").expect("README has the section");
    let section = &README[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let mut blocks = Vec::new();
    let mut lines = section[..end].lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
            blocks.push((lang.to_owned(), body.join("\n")));
        }
    }
    blocks
}

/// The Rust block as users see it: without rustdoc's hidden `# ` lines.
fn visible(code: &str) -> String {
    code.lines().filter(|l| !l.starts_with("# ")).collect::<Vec<_>>().join("\n").trim().to_owned()
}

#[rustfmt::skip] // kept exactly as the README shows it
fn the_rust_block() -> Result<(), Box<dyn std::error::Error>> {
    // README-BEGIN
    use shelf::Value;

    let mut db = shelf::open("inventory")?; // detected: dumb files, pickled values
    let apples: Value = db.get("apples")?.expect("written by Python");
    println!("{apples:?}");
    db.insert("pears", &Value::Dict(vec![
        (Value::from("count"), Value::from(5i64)),
        (Value::from("tags"), Value::Tuple(vec![Value::from("green")])),
    ]))?;
    db.close()?;
    // README-END
    Ok(())
}

#[test]
fn readme_rust_block_is_the_one_tested() {
    let blocks = section_blocks();
    let rust = blocks.iter().find(|(lang, _)| lang.starts_with("rust")).expect("a rust block");
    let begin = THIS_FILE.find("// README-BEGIN\n").expect("marker") + "// README-BEGIN\n".len();
    let end = THIS_FILE.find("    // README-END").expect("marker");
    let here: String = THIS_FILE[begin..end]
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(visible(&rust.1), here.trim(), "README's Rust block and this test's copy differ");
}

#[test]
fn readme_python_example_runs_both_ways() {
    let Some(py) = Python::default_or_skip("readme_python_example_runs_both_ways") else { return };
    let blocks = section_blocks();
    let python: Vec<&String> = blocks.iter().filter(|(lang, _)| lang == "python").map(|(_, b)| b).collect();
    assert_eq!(python.len(), 2, "the section has a writing and a reading Python block");
    let dir = tempfile::tempdir().unwrap();
    let chdir = |code: &str| format!("import os, sys\nos.chdir(sys.argv[1])\n{code}\nprint('ok')\n");
    let where_ = dir.path().to_str().unwrap();
    assert_eq!(py.run(&chdir(python[0]), &[where_]).unwrap().trim(), "ok");
    // The Rust block opens "inventory" relative to the working directory.
    std::env::set_current_dir(dir.path()).unwrap();
    the_rust_block().unwrap();
    let db = shelf::open("inventory").unwrap();
    let apples: Value = db.get("apples").unwrap().unwrap();
    assert_eq!(
        apples,
        Value::Dict(vec![
            (Value::from("count"), Value::Int(3)),
            (Value::from("tags"), Value::Tuple(vec![Value::from("red"), Value::from("sweet")])),
        ])
    );
    drop(db);
    assert_eq!(py.run(&chdir(python[1]), &[where_]).unwrap().trim(), "ok");
}
