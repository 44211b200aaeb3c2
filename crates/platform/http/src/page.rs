//! The one envelope every list answers: `{"items": [...], "paging": {...}}`.
//!
//! A list is paged one of three ways, and `paging` says which:
//!
//! - **By offset** (`?limit=&offset=`): `{"limit": 50, "offset": 0, "next_offset": 50}`. Ask again
//!   with `offset = next_offset`; it is `null` on the last page.
//! - **By cursor** (`?limit=&after=`), for logs that grow while they are read:
//!   `{"limit": 100, "after": null, "next_after": "0193…"}`. Ask again with
//!   `after = next_after`; it is `null` on the last page.
//! - **Whole**: a list bounded by what it belongs to (an invoice's payments, a day's
//!   appointments) comes in one page, and `paging` is `{}`.
//!
//! A page knows whether another follows without counting: the store is asked for one row more
//! than `limit` ([`Page::offset`] and [`Page::after`] take those rows and drop the extra).

use std::borrow::Cow;

use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

/// One page of a list: its items and how to ask for the next page.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page, in the list's order.
    pub items: Vec<T>,
    pub paging: Paging,
}

/// How a list was paged and how to ask for its next page (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Paging {
    /// Paged by `limit` and `offset`.
    Offset { limit: i64, offset: i64, next_offset: Option<i64> },
    /// Paged by `limit` and the `after` cursor (the id of the last item seen).
    Cursor { limit: i64, after: Option<Uuid>, next_after: Option<Uuid> },
    /// The whole list in one page.
    Whole {},
}

impl<T> Page<T> {
    /// A page read at `offset` from rows fetched with a limit of `limit + 1`.
    pub fn offset(mut rows: Vec<T>, limit: i64, offset: i64) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let next_offset = more.then(|| offset + limit);
        Page { items: rows, paging: Paging::Offset { limit, offset, next_offset } }
    }

    /// A page read after the cursor `after` from rows fetched with a limit of `limit + 1`;
    /// `key` is the cursor of an item (its id).
    pub fn after(mut rows: Vec<T>, limit: i64, after: Option<Uuid>, key: impl Fn(&T) -> Uuid) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let next_after = if more { rows.last().map(key) } else { None };
        Page { items: rows, paging: Paging::Cursor { limit, after, next_after } }
    }

    /// The whole list as one page.
    pub fn whole(items: Vec<T>) -> Self {
        Page { items, paging: Paging::Whole {} }
    }

    /// The same page with each item changed by `f` (rows to their wire type).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), paging: self.paging }
    }
}

impl PartialSchema for Paging {
    fn schema() -> RefOr<Schema> {
        let integer = |minimum: i64, description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(minimum))
                .description(Some(description.to_owned()))
        };
        let nullable = |builder: ObjectBuilder, kind: Type| {
            builder.schema_type(utoipa::openapi::schema::SchemaType::from_iter([kind, Type::Null]))
        };
        let cursor = |description: &str| {
            nullable(
                ObjectBuilder::new()
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .description(Some(description.to_owned())),
                Type::String,
            )
        };
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "How the list was paged and how to ask for its next page. By offset: `limit`, \
                 `offset` and `next_offset`; by cursor: `limit`, `after` and `next_after`; a list \
                 that comes whole has none of them. `next_offset` or `next_after` is what to send \
                 as `offset` or `after` for the next page, and `null` on the last page.",
            ))
            .property("limit", integer(1, "The most items a page holds."))
            .property("offset", integer(0, "How many items of the list come before this page."))
            .property(
                "next_offset",
                nullable(integer(1, "The `offset` of the next page; `null` on the last page."), Type::Integer),
            )
            .property("after", cursor("The cursor this page was read after; `null` for the first page."))
            .property("next_after", cursor("The `after` of the next page; `null` on the last page."))
            .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for Paging {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Paging")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_offset_page_knows_the_next_from_the_extra_row() {
        let page = Page::offset(vec![1, 2, 3], 2, 4);
        assert_eq!(
            serde_json::to_value(&page).unwrap(),
            json!({"items": [1, 2], "paging": {"limit": 2, "offset": 4, "next_offset": 6}})
        );
        let last = Page::offset(vec![1, 2], 2, 4);
        assert_eq!(
            serde_json::to_value(&last).unwrap()["paging"],
            json!({"limit": 2, "offset": 4, "next_offset": null})
        );
    }

    #[test]
    fn a_cursor_page_names_its_last_item() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = Page::after(ids.clone(), 2, None, |id| *id);
        assert_eq!(
            serde_json::to_value(&page).unwrap()["paging"],
            json!({"limit": 2, "after": null, "next_after": ids[1]})
        );
        let last = Page::after(ids[2..].to_vec(), 2, Some(ids[1]), |id| *id);
        assert_eq!(
            serde_json::to_value(&last).unwrap()["paging"],
            json!({"limit": 2, "after": ids[1], "next_after": null})
        );
    }

    #[test]
    fn a_whole_list_has_empty_paging() {
        let page: Page<u8> = Page::whole(vec![1]);
        assert_eq!(serde_json::to_value(&page).unwrap(), json!({"items": [1], "paging": {}}));
    }
}
