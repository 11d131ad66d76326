//! The schema as a mapper reads it: bytes another process wrote, which may
//! be anything. Parsing never panics; what it accepts is consistent (every
//! region inside the span, in order) and survives being written back and
//! read again unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skmem::schema::{schema_size, write_schema, SchemaView};

fuzz_target!(|data: &[u8]| {
    // A mapper passes the size of the span it mapped: the input's first
    // eight bytes, the rest is the SCHEMA object.
    let Some((span, bytes)) = data.split_first_chunk::<8>() else {
        return;
    };
    let span_size = u64::from_le_bytes(*span);
    let Ok(view) = SchemaView::parse(bytes, span_size) else {
        return;
    };
    let info = view.to_info();
    let mut end = 0;
    for r in &info.regions {
        assert!(r.offset >= end, "regions overlap or go backwards: {r:?}");
        end = r.offset.checked_add(r.size).expect("a region's end fits");
        assert!(end <= span_size, "a region past the span: {r:?}");
    }
    let mut out = vec![0u8; schema_size(info.regions.len(), info.workers.len())];
    let n = write_schema(&info, &mut out).expect("an accepted schema can be written");
    let again = SchemaView::parse(&out[..n], span_size)
        .expect("a written schema parses")
        .to_info();
    assert_eq!(again, info);
});
