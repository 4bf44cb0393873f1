//! Report stage: the PDF, laid out in-process by Typst from a document that minijinja
//! renders from `reports/report.typ.j2`. The charts reach Typst as SVG bytes through
//! `sys.inputs` (never as markup); the fonts are compiled into the binary; the document
//! cannot read any file. Nothing here computes a figure.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use anyhow::{Result, anyhow};
use typst::diag::{FileError, FileResult, Severity};
use typst::foundations::{Bytes, Datetime, Dict, IntoValue};
use typst::syntax::{FileId, Source};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World, WorldExt};

/// The fonts of typst-assets, parsed once per process.
fn fonts() -> &'static (LazyHash<FontBook>, Vec<Font>) {
    static FONTS: OnceLock<(LazyHash<FontBook>, Vec<Font>)> = OnceLock::new();
    FONTS.get_or_init(|| {
        let fonts: Vec<Font> = typst_assets::fonts()
            .flat_map(|data| Font::iter(Bytes::new(data)))
            .collect();
        (LazyHash::new(FontBook::from_fonts(&fonts)), fonts)
    })
}

/// A world of one in-memory source file and no file system.
struct ReportWorld {
    library: LazyHash<Library>,
    source: Source,
}

impl World for ReportWorld {
    fn library(&self) -> &LazyHash<Library> {
        &self.library
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &fonts().0
    }

    fn main(&self) -> FileId {
        self.source.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.source.id() {
            Ok(self.source.clone())
        } else {
            Err(FileError::AccessDenied)
        }
    }

    fn file(&self, _id: FileId) -> FileResult<Bytes> {
        Err(FileError::AccessDenied)
    }

    fn font(&self, index: usize) -> Option<Font> {
        fonts().1.get(index).cloned()
    }

    fn today(&self, _offset: Option<typst::foundations::Duration>) -> Option<Datetime> {
        None // the report is dated by its month, never by the clock
    }
}

/// Lays out a Typst document and exports it as PDF; `charts` become
/// `sys.inputs.at("chart-<name>")` (SVG bytes).
pub fn render(document: &str, charts: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut inputs = Dict::new();
    for (name, svg) in charts {
        inputs.insert(
            format!("chart-{name}").into(),
            Bytes::new(svg.clone().into_bytes()).into_value(),
        );
    }
    let world = ReportWorld {
        library: LazyHash::new(Library::builder().with_inputs(inputs).build()),
        source: Source::detached(document),
    };
    let warned = typst::compile::<typst_layout::PagedDocument>(&world);
    let doc = warned.output.map_err(|errors| {
        let text: Vec<String> = errors
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| {
                let at = world
                    .range(d.span)
                    .map(|r| {
                        let line = world.source.text()[..r.start].lines().count();
                        format!(" (line {line})")
                    })
                    .unwrap_or_default();
                format!("{}{at}", d.message)
            })
            .collect();
        anyhow!("laying out the PDF: {}", text.join("; "))
    })?;
    typst_pdf::pdf(&doc, &typst_pdf::PdfOptions::default())
        .map_err(|e| anyhow!("writing the PDF: {:?}", e.first().map(|d| &d.message)))
}
