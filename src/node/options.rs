//! The options object a user passes, read into `(name, value)` pairs for `config.rs` to check
//! (names, types and ranges live there, in the one option list).

use super::*;

/// The options object as `(name, value)` pairs, its values typed by `typeof` only: the names and
/// types are checked by `Options::from_entries`, against the one option list.
pub(super) fn option_entries(options: Option<Unknown>) -> CoreResult<Vec<(String, OptionValue)>> {
    let bad = |what: &str| CoreError::config(format!("options must be an object, got {what}"));
    let Some(options) = options else { return Ok(Vec::new()) };
    let internal = |e: napi::Error| CoreError::config(format!("options could not be read: {}", e.reason));
    match options.get_type().map_err(internal)? {
        ValueType::Undefined | ValueType::Null => return Ok(Vec::new()),
        ValueType::Object => {}
        other => return Err(bad(type_name(other))),
    }
    if options.is_array().map_err(internal)? {
        return Err(bad("array"));
    }
    // SAFETY: the value was just checked to be an object.
    let obj: Object = unsafe { options.cast() }.map_err(internal)?;
    let mut out = Vec::new();
    read_entries(&obj, "", &mut out)?;
    Ok(out)
}

/// The entries of an options object; a group (`cdn`, `cdn.cloudfront`) given as an object is
/// read as dotted names.
fn read_entries(obj: &Object, prefix: &str, out: &mut Vec<(String, OptionValue)>) -> CoreResult<()> {
    let internal = |e: napi::Error| CoreError::config(format!("options could not be read: {}", e.reason));
    for key in Object::keys(obj).map_err(internal)? {
        let v: Unknown = obj.get_named_property(&key).map_err(internal)?;
        let name = format!("{prefix}{key}");
        let ty = v.get_type().map_err(internal)?;
        if ty == ValueType::Object
            && crate::config::OPTION_GROUPS.contains(&name.as_str())
            && !v.is_array().map_err(internal)?
        {
            // SAFETY: the value was just checked to be an object.
            let group: Object = unsafe { v.cast() }.map_err(internal)?;
            read_entries(&group, &format!("{name}."), out)?;
            continue;
        }
        let value = match ty {
            ValueType::String => OptionValue::Str(unsafe { v.cast::<String>() }.map_err(internal)?),
            ValueType::Number => OptionValue::Num(unsafe { v.cast::<f64>() }.map_err(internal)?),
            ValueType::Boolean => OptionValue::Bool(unsafe { v.cast::<bool>() }.map_err(internal)?),
            ValueType::Undefined | ValueType::Null => OptionValue::Absent,
            other => OptionValue::Other(type_name(other)),
        };
        out.push((name, value));
    }
    Ok(())
}

fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "boolean",
        ValueType::Number => "number",
        ValueType::String => "string",
        ValueType::Symbol => "symbol",
        ValueType::Function => "function",
        ValueType::BigInt => "bigint",
        _ => "object",
    }
}

/// Checks option names and types against the one option list without creating a core; throws
/// the same `FLEETCACHE_CONFIG` error the constructor would.
#[napi(catch_unwind, ts_args_type = "options?: Options")]
pub fn check_options(env: &Env, options: Option<Unknown>) -> Result<()> {
    option_entries(options).and_then(Options::from_entries).map(|_| ()).map_err(|e| coded(env, e))
}
