//! `cargo bench --no-default-features`: codec and in-memory tier costs for a realistic APP_PAGE
//! entry (60 KB HTML, 30 KB RSC, segments with `/_full` = rscData).

use std::sync::Arc;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fleetcache::codec;
use fleetcache::entry::{CacheControl, Entry, Revalidate, Value};
use fleetcache::l1::L1;

fn page() -> Entry {
    let mut html = String::from("<!DOCTYPE html><html><body><main>");
    let mut i = 0u32;
    while html.len() < 60_000 {
        html.push_str(&format!(
            "<article class=\"card\" data-id=\"{i}\"><h2>item {} {}</h2><p>lorem ipsum {}</p><span>${}.{:02}</span></article>",
            i * 7 % 31,
            i * 13 % 17,
            i * 3 % 101,
            i % 200,
            i % 100
        ));
        i += 1;
    }
    let mut rsc = String::new();
    i = 0;
    while rsc.len() < 30_000 {
        rsc.push_str(&format!("{i}:[\"$\",\"article\",null,{{\"children\":\"item {} {}\"}}]\n", i * 7 % 31, i % 97));
        i += 1;
    }
    let rsc = Bytes::from(rsc);
    Entry {
        key: "/route-cache/APP_PAGE/ab/$/products".into(),
        last_modified: 1_795_000_000_000,
        cache_control: Some(CacheControl { revalidate: Revalidate::Seconds(60.0), expire: Some(31536000.0) }),
        tags: vec!["_N_T_/products".into(), "products".into()],
        write_id: 1,
        rendered_at: 0,
        value: Some(Value::AppPage {
            html,
            rsc_data: Some(rsc.clone()),
            postponed: None,
            headers_json: Some("{\"x-nextjs-stale-time\":\"300\"}".into()),
            status: None,
            segments: Some(vec![
                ("/_tree".into(), Bytes::from_static(b"{\"tree\":[]}")),
                ("/_full".into(), rsc.clone()),
                ("/products/__PAGE__".into(), rsc.slice(0..24_000)),
            ]),
        }),
    }
}

fn bench(c: &mut Criterion) {
    let e = page();
    let encoded = codec::encode(&e, 3).unwrap();
    println!("encoded APP_PAGE: {} bytes (in memory {} bytes)", encoded.len(), e.weight());
    c.bench_function("codec encode APP_PAGE", |b| b.iter(|| codec::encode(black_box(&e), 3).unwrap()));
    c.bench_function("codec decode APP_PAGE", |b| b.iter(|| codec::decode(black_box(&encoded), 1 << 30).unwrap()));
    let l1 = L1::new(256 << 20);
    l1.insert(Arc::new(e.clone()));
    c.bench_function("l1 get hit", |b| b.iter(|| l1.get(black_box("/route-cache/APP_PAGE/ab/$/products")).unwrap()));
    let small = L1::new(2 << 20);
    let mut n = 0u64;
    c.bench_function("l1 insert under eviction (2 MiB budget)", |b| {
        b.iter(|| {
            let mut x = e.clone();
            x.key = format!("/k{n}");
            n += 1;
            small.insert(Arc::new(x));
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
