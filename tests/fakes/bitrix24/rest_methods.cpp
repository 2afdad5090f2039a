#include "tests/fakes/bitrix24/rest_methods.hpp"

#include "tests/fakes/bitrix24/rest_filter.hpp"
#include "tests/fakes/bitrix24/rest_time.hpp"
#include "tests/fakes/common/json_writer.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <map>

namespace crmsync::fakes::bitrix24 {
namespace {

constexpr std::int64_t k_no_count = -1; // start=-1: no total, no next (§1.3)
constexpr std::int64_t k_seconds_per_day = 86'400;
constexpr int k_entity_lead = 1;
constexpr int k_entity_deal = 2;
constexpr int k_entity_old_invoice = 5;
constexpr int k_entity_smart_invoice = 31;

using Method = CallResult (*)(const Portal&, const Params&, const MethodContext&);

std::string_view semantic_text(char semantic) {
    switch (semantic) {
    case 'S':
        return "S";
    case 'F':
        return "F";
    default:
        return "P";
    }
}

std::string_view extra_semantics(Bitrix24Semantics semantics) {
    switch (semantics) {
    case Bitrix24Semantics::process:
        return "process";
    case Bitrix24Semantics::success:
        return "success";
    case Bitrix24Semantics::failure:
        return "failure";
    case Bitrix24Semantics::apology:
        return "apology";
    }
    return "process";
}

// `start` as PHP reads it: absent or junk is 0; -1 switches the count off; other negative
// values are treated as 0 [U: reference §1.3 documents only -1].
std::int64_t start_of(const Params& params) {
    const auto* start = find_param(params, "start");
    if (start == nullptr) {
        return 0;
    }
    const auto value = php_intval(*start);
    return value == k_no_count ? k_no_count : std::max<std::int64_t>(value, 0);
}

struct Window {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::optional<std::int64_t> total;
    std::optional<std::int64_t> next;
};

// §1.3: `next` = offset + 50 while that is below `total`, omitted on the last page; a start
// past the end gives an empty page with the same total [U]; start=-1 gives "total": 0 and no
// next.
Window window(std::size_t count, std::int64_t start) {
    Window w;
    const auto offset = static_cast<std::size_t>(std::max<std::int64_t>(start, 0));
    w.begin = std::min(offset, count);
    w.end = std::min(w.begin + k_page_size, count);
    if (start == k_no_count) {
        w.total = 0;
        return w;
    }
    w.total = static_cast<std::int64_t>(count);
    if (offset + k_page_size < count) {
        w.next = static_cast<std::int64_t>(offset + k_page_size);
    }
    return w;
}

CallResult success(std::string result, std::optional<std::int64_t> total = std::nullopt,
                   std::optional<std::int64_t> next = std::nullopt) {
    CallResult r;
    r.result = std::move(result);
    r.total = total;
    r.next = next;
    return r;
}

CallResult invalid_arg(std::string description) {
    return failure(400, "INVALID_ARG_VALUE", std::move(description));
}

template <class Get>
void sort_items(std::vector<std::size_t>& items, const std::vector<OrderKey>& order, Get get) {
    if (order.empty()) {
        return;
    }
    std::stable_sort(items.begin(), items.end(), [&](std::size_t a, std::size_t b) {
        std::string scratch_a;
        std::string scratch_b;
        for (const auto& key : order) {
            const int c =
                compare_values(get(a, key.field, scratch_a), get(b, key.field, scratch_b));
            if (c != 0) {
                return key.descending ? c > 0 : c < 0;
            }
        }
        return false;
    });
}

// Reads entityTypeId; nullopt and `error` set when it is missing or not a number.
std::optional<std::int64_t> entity_type_of(const Params& params, CallResult& error) {
    const auto* value = find_param(params, "entityTypeId");
    if (value == nullptr) {
        // [U] The wording of the controller's missing-argument error is not documented.
        error = invalid_arg("Could not find value for parameter {entityTypeId}");
        return std::nullopt;
    }
    const auto type = integer_of(*value);
    if (!type) {
        error = invalid_arg("Invalid value for parameter {entityTypeId}");
        return std::nullopt;
    }
    return type;
}

CallResult entity_not_supported(std::int64_t type) {
    static const std::map<std::int64_t, std::string_view> k_names{
        {3, "CONTACT"}, {4, "COMPANY"}, {7, "QUOTE"}, {8, "REQUISITE"}};
    const auto it = k_names.find(type);
    const auto name =
        it != k_names.end() ? std::string(it->second) : "Entity type " + std::to_string(type);
    // §1.4's example body has a numeric "error": 0; the documented code is the string, which
    // is what clients match on, so the fake sends the string.
    return failure(400, "ENTITY_TYPE_NOT_SUPPORTED", name + " entity is not supported");
}

// ---- crm.stagehistory.list ------------------------------------------------------------------

enum HistoryField : std::size_t {
    h_id,
    h_type_id,
    h_owner_id,
    h_created_time,
    h_category_id,
    h_stage_semantic_id,
    h_stage_id,
};

// §1.4 fields of deals, in the order of the documented example.
constexpr std::array<FieldSpec, 7> k_history_fields{{
    {"ID", FieldKind::integer},
    {"TYPE_ID", FieldKind::integer},
    {"OWNER_ID", FieldKind::integer},
    {"CREATED_TIME", FieldKind::datetime},
    {"CATEGORY_ID", FieldKind::integer},
    {"STAGE_SEMANTIC_ID", FieldKind::text},
    {"STAGE_ID", FieldKind::text},
}};

// Leads and old invoices have STATUS_* instead of STAGE_* and no category (§1.4).
constexpr std::array<FieldSpec, 6> k_lead_history_fields{{
    {"ID", FieldKind::integer},
    {"TYPE_ID", FieldKind::integer},
    {"OWNER_ID", FieldKind::integer},
    {"CREATED_TIME", FieldKind::datetime},
    {"STATUS_SEMANTIC_ID", FieldKind::text},
    {"STATUS_ID", FieldKind::text},
}};

FieldValue history_value(const Portal& portal, const HistoryRow& row, std::size_t field) {
    switch (field) {
    case h_id:
        return FieldValue::of(row.id);
    case h_type_id:
        return FieldValue::of(row.type);
    case h_owner_id:
        return FieldValue::of(row.owner);
    case h_created_time:
        return FieldValue::of(row.created);
    case h_category_id:
        return FieldValue::of(portal.stage_ref(row.stage).category);
    case h_stage_semantic_id:
        return FieldValue::of_text(semantic_text(row.semantic));
    case h_stage_id:
        return FieldValue::of_text(portal.stage_ref(row.stage).status_id);
    default:
        return FieldValue::none();
    }
}

// The ID conditions narrow the id-sorted rows to [first, last] by binary search, which keeps
// the recommended export loop (order ID ASC, filter >ID, start=-1; §1.3) O(log n) per page.
constexpr std::int64_t k_id_limit = std::int64_t{1} << 40;

struct IdRange {
    std::int64_t first = std::numeric_limits<std::int64_t>::min();
    std::int64_t last = std::numeric_limits<std::int64_t>::max();
    bool other_conditions = false;
};

IdRange id_range(const std::vector<Condition>& conditions) {
    IdRange range;
    for (const auto& c : conditions) {
        const bool single =
            c.field == h_id && !c.never && c.values.size() == 1 && !c.values.front().null;
        if (!single) {
            range.other_conditions = true;
            continue;
        }
        // Row ids are 32-bit, so clamping keeps v + 1 and v - 1 from overflowing.
        const auto v = std::clamp<std::int64_t>(c.values.front().number, -2, k_id_limit);
        switch (c.op) {
        case FilterOp::equal:
            range.first = std::max(range.first, v);
            range.last = std::min(range.last, v);
            break;
        case FilterOp::greater:
            range.first = std::max(range.first, v + 1);
            break;
        case FilterOp::greater_equal:
            range.first = std::max(range.first, v);
            break;
        case FilterOp::less:
            range.last = std::min(range.last, v - 1);
            break;
        case FilterOp::less_equal:
            range.last = std::min(range.last, v);
            break;
        default:
            range.other_conditions = true;
        }
    }
    return range;
}

CallResult stage_history_list(const Portal& portal, const Params& params,
                              const MethodContext& context) {
    CallResult error;
    const auto type = entity_type_of(params, error);
    if (!type) {
        return error;
    }
    const bool deals = *type == k_entity_deal;
    const bool empty_kind =
        *type == k_entity_lead || *type == k_entity_old_invoice || *type == k_entity_smart_invoice;
    if (!deals && !empty_kind) {
        return entity_not_supported(*type);
    }
    const std::span<const FieldSpec> fields =
        *type == k_entity_lead || *type == k_entity_old_invoice
            ? std::span<const FieldSpec>(k_lead_history_fields)
            : std::span<const FieldSpec>(k_history_fields);
    std::vector<Condition> conditions;
    if (auto e = compile_filter(find_param(params, "filter"), fields,
                                {Strictness::strict, context.offset_minutes}, conditions)) {
        return invalid_arg(std::move(*e));
    }
    std::vector<OrderKey> order;
    if (auto e = compile_order(find_param(params, "order"), fields, Strictness::strict, order)) {
        return invalid_arg(std::move(*e));
    }
    const auto select = compile_select(find_param(params, "select"), fields);
    const auto start = start_of(params);
    const bool counting = start != k_no_count;
    const auto offset = static_cast<std::size_t>(std::max<std::int64_t>(start, 0));

    // The fake portal has no leads or invoices: their history is empty.
    const auto& rows = deals ? portal.history() : std::vector<HistoryRow>{};
    const auto range = id_range(conditions);
    auto begin = std::lower_bound(rows.begin(), rows.end(), range.first,
                                  [](const HistoryRow& row, std::int64_t id) {
                                      return static_cast<std::int64_t>(row.id) < id;
                                  });
    auto end = std::upper_bound(rows.begin(), rows.end(), range.last,
                                [](std::int64_t id, const HistoryRow& row) {
                                    return id < static_cast<std::int64_t>(row.id);
                                });
    if (range.first > range.last || end < begin) {
        end = begin;
    }
    const auto matches_all = [&](const HistoryRow& row) {
        return std::all_of(conditions.begin(), conditions.end(), [&](const Condition& c) {
            return matches(c, history_value(portal, row, c.field));
        });
    };

    // [U] Without `order` rows come by ID ascending, the table's natural order.
    std::vector<const HistoryRow*> page;
    std::size_t total = 0;
    const bool by_id = order.empty() || order.front().field == h_id; // IDs are unique.
    const bool descending = !order.empty() && order.front().descending;
    if (by_id && !range.other_conditions) {
        total = static_cast<std::size_t>(end - begin);
        for (auto i = offset; i < total && page.size() < k_page_size; ++i) {
            page.push_back(descending ? &*(end - 1 - static_cast<std::ptrdiff_t>(i))
                                      : &*(begin + static_cast<std::ptrdiff_t>(i)));
        }
    } else if (by_id) {
        const auto visit = [&](const HistoryRow& row) {
            if (!matches_all(row)) {
                return true;
            }
            if (total >= offset && page.size() < k_page_size) {
                page.push_back(&row);
            }
            ++total;
            return counting || page.size() < k_page_size;
        };
        if (descending) {
            for (auto it = end; it != begin && visit(*(it - 1)); --it) {
            }
        } else {
            for (auto it = begin; it != end && visit(*it); ++it) {
            }
        }
    } else {
        std::vector<std::size_t> matched;
        for (auto it = begin; it != end; ++it) {
            if (matches_all(*it)) {
                matched.push_back(static_cast<std::size_t>(it - rows.begin()));
            }
        }
        sort_items(matched, order, [&](std::size_t i, std::size_t field, std::string&) {
            return history_value(portal, rows[i], field);
        });
        total = matched.size();
        for (auto i = offset; i < total && page.size() < k_page_size; ++i) {
            page.push_back(&rows[matched[i]]);
        }
    }

    std::string body;
    JsonWriter w(body);
    const auto number = [&](std::int64_t value) {
        if (context.history_numbers_as_strings) {
            w.str(std::to_string(value));
        } else {
            w.integer(value);
        }
    };
    w.begin_object();
    w.key("items").begin_array();
    for (const auto* row : page) {
        const auto& ref = portal.stage_ref(row->stage);
        const RawHistoryField* raw = nullptr;
        if (context.raw_history != nullptr) {
            const auto it = context.raw_history->find(row->id);
            raw = it == context.raw_history->end() ? nullptr : &it->second;
        }
        w.begin_object();
        for (std::size_t f = 0; f < k_history_fields.size(); ++f) {
            if (!select[f]) {
                continue;
            }
            w.key(k_history_fields[f].name);
            if (raw != nullptr && raw->field == k_history_fields[f].name) {
                w.raw(raw->json);
                continue;
            }
            switch (f) {
            case h_id:
                number(row->id);
                break;
            case h_type_id:
                number(row->type);
                break;
            case h_owner_id:
                number(row->owner);
                break;
            case h_created_time:
                w.str(format_time(row->created, context.offset_minutes));
                break;
            case h_category_id:
                number(ref.category);
                break;
            case h_stage_semantic_id:
                w.str(semantic_text(row->semantic));
                break;
            default:
                w.str(ref.status_id);
            }
        }
        w.end_object();
    }
    w.end_array();
    w.end_object();
    if (!counting) {
        return success(std::move(body), 0);
    }
    const auto all = static_cast<std::int64_t>(total);
    std::optional<std::int64_t> next;
    if (offset + k_page_size < total) {
        next = static_cast<std::int64_t>(offset + k_page_size);
    }
    return success(std::move(body), all, next);
}

// ---- crm.status.list, crm.dealcategory.stage.list --------------------------------------------

enum StatusField : std::size_t {
    s_id,
    s_entity_id,
    s_status_id,
    s_name,
    s_name_init,
    s_sort,
    s_system,
    s_category_id,
    s_color,
    s_semantics,
};

constexpr std::array<FieldSpec, 10> k_status_fields{{
    {"ID", FieldKind::integer},
    {"ENTITY_ID", FieldKind::text},
    {"STATUS_ID", FieldKind::text},
    {"NAME", FieldKind::text},
    {"NAME_INIT", FieldKind::text},
    {"SORT", FieldKind::integer},
    {"SYSTEM", FieldKind::text},
    {"CATEGORY_ID", FieldKind::integer},
    {"COLOR", FieldKind::text},
    {"SEMANTICS", FieldKind::text},
}};

bool is_default_or_none(const std::optional<int>& category) { return !category || *category == 0; }

FieldValue status_value(const StatusRow& row, std::size_t field) {
    switch (field) {
    case s_id:
        return FieldValue::of(row.id);
    case s_entity_id:
        return FieldValue::of_text(row.entity_id);
    case s_status_id:
        return FieldValue::of_text(row.status_id);
    case s_name:
        return FieldValue::of_text(row.name);
    case s_name_init:
        return FieldValue::of_text(row.name_init);
    case s_sort:
        return FieldValue::of(row.sort);
    case s_system:
        return FieldValue::of_text(row.system ? "Y" : "N");
    case s_category_id:
        return is_default_or_none(row.category) ? FieldValue::none()
                                                : FieldValue::of(*row.category);
    case s_color:
        return FieldValue::of_text(row.color);
    case s_semantics:
        return row.semantics == Bitrix24Semantics::process
                   ? FieldValue::none()
                   : FieldValue::of_text(semantic_text(semantic_char(row.semantics)));
    default:
        return FieldValue::none();
    }
}

// The §1.5 example row: every number a string, CATEGORY_ID null for the default pipeline,
// SEMANTICS null for process stages.
void write_status(JsonWriter& w, const StatusRow& row) {
    w.begin_object();
    w.key("ID").str(std::to_string(row.id));
    w.key("ENTITY_ID").str(row.entity_id);
    w.key("STATUS_ID").str(row.status_id);
    w.key("NAME").str(row.name);
    w.key("NAME_INIT").str(row.name_init);
    w.key("SORT").str(std::to_string(row.sort));
    w.key("SYSTEM").str(row.system ? "Y" : "N");
    w.key("CATEGORY_ID");
    if (is_default_or_none(row.category)) {
        w.null();
    } else {
        w.str(std::to_string(*row.category));
    }
    w.key("COLOR").str(row.color);
    w.key("SEMANTICS");
    if (row.semantics == Bitrix24Semantics::process) {
        w.null();
    } else {
        w.str(semantic_text(semantic_char(row.semantics)));
    }
    w.key("EXTRA").begin_object();
    w.key("SEMANTICS").str(extra_semantics(row.semantics));
    w.key("COLOR").str(row.color);
    w.end_object();
    w.end_object();
}

CallResult status_list(const Portal& portal, const Params& params, const MethodContext& context) {
    std::vector<Condition> conditions;
    compile_filter(find_param(params, "filter"), k_status_fields,
                   {Strictness::lenient, context.offset_minutes}, conditions);
    std::vector<OrderKey> order;
    compile_order(find_param(params, "order"), k_status_fields, Strictness::lenient, order);
    const auto& rows = portal.statuses();
    std::vector<std::size_t> matched;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        if (std::all_of(conditions.begin(), conditions.end(), [&](const Condition& c) {
                return matches(c, status_value(rows[i], c.field));
            })) {
            matched.push_back(i);
        }
    }
    // [U] Without `order`: by ID, which is also the order of the §1.5 example.
    sort_items(matched, order, [&](std::size_t i, std::size_t field, std::string&) {
        return status_value(rows[i], field);
    });
    // [U] Whether crm.status.list pages at all is undocumented; it is a list method, so it
    // follows §1.3 (real portals rarely have more than 50 rows per ENTITY_ID).
    const auto win = window(matched.size(), start_of(params));
    std::string body;
    JsonWriter w(body);
    w.begin_array();
    for (auto i = win.begin; i < win.end; ++i) {
        write_status(w, rows[matched[i]]);
    }
    w.end_array();
    return success(std::move(body), win.total, win.next);
}

// Deprecated, param `id` (absent = 0); an unknown id gives an empty list (§1.5). [U] The
// answer is undocumented; the reference presumes crm.status.list rows, in SORT order.
CallResult deal_category_stage_list(const Portal& portal, const Params& params,
                                    const MethodContext&) {
    const auto* id_param = find_param(params, "id");
    const auto id = id_param == nullptr ? 0 : php_intval(*id_param);
    std::vector<const StatusRow*> rows;
    for (const auto& row : portal.statuses()) {
        if (row.category && *row.category == id) {
            rows.push_back(&row);
        }
    }
    std::stable_sort(rows.begin(), rows.end(),
                     [](const StatusRow* a, const StatusRow* b) { return a->sort < b->sort; });
    std::string body;
    JsonWriter w(body);
    w.begin_array();
    for (const auto* row : rows) {
        write_status(w, *row);
    }
    w.end_array();
    return success(std::move(body), static_cast<std::int64_t>(rows.size()));
}

// ---- crm.category.list ------------------------------------------------------------------------

// [U] The reference names crm.category.* only as the successor of crm.dealcategory.*; the
// shape here is the one the current Bitrix24 docs show: result.categories with camelCase keys
// and integer numbers, isDefault "Y"/"N".
CallResult category_list(const Portal& portal, const Params& params, const MethodContext&) {
    CallResult error;
    const auto type = entity_type_of(params, error);
    if (!type) {
        return error;
    }
    if (*type != k_entity_deal) {
        return entity_not_supported(*type);
    }
    std::vector<Bitrix24Category> categories = portal.categories();
    std::stable_sort(categories.begin(), categories.end(),
                     [](const auto& a, const auto& b) { return a.sort < b.sort; });
    const auto win = window(categories.size(), start_of(params));
    std::string body;
    JsonWriter w(body);
    w.begin_object();
    w.key("categories").begin_array();
    for (auto i = win.begin; i < win.end; ++i) {
        const auto& c = categories[i];
        w.begin_object();
        w.key("id").integer(c.id);
        w.key("name").str(c.name);
        w.key("sort").integer(c.sort);
        w.key("entityTypeId").integer(k_entity_deal);
        w.key("isDefault").str(c.id == 0 ? "Y" : "N");
        w.end_object();
    }
    w.end_array();
    w.end_object();
    return success(std::move(body), win.total, win.next);
}

// ---- crm.deal.list, crm.deal.get --------------------------------------------------------------

enum DealField : std::size_t {
    d_id,
    d_title,
    d_type_id,
    d_category_id,
    d_stage_id,
    d_stage_semantic_id,
    d_is_new,
    d_currency_id,
    d_opportunity,
    d_assigned_by_id,
    d_created_by_id,
    d_modify_by_id,
    d_date_create,
    d_date_modify,
    d_begindate,
    d_closedate,
    d_closed,
    d_opened,
};

constexpr std::array<FieldSpec, 18> k_deal_fields{{
    {"ID", FieldKind::integer},
    {"TITLE", FieldKind::text},
    {"TYPE_ID", FieldKind::text},
    {"CATEGORY_ID", FieldKind::integer},
    {"STAGE_ID", FieldKind::text},
    {"STAGE_SEMANTIC_ID", FieldKind::text},
    {"IS_NEW", FieldKind::text},
    {"CURRENCY_ID", FieldKind::text},
    {"OPPORTUNITY", FieldKind::integer},
    {"ASSIGNED_BY_ID", FieldKind::integer},
    {"CREATED_BY_ID", FieldKind::integer},
    {"MODIFY_BY_ID", FieldKind::integer},
    {"DATE_CREATE", FieldKind::datetime},
    {"DATE_MODIFY", FieldKind::datetime},
    {"BEGINDATE", FieldKind::datetime},
    {"CLOSEDATE", FieldKind::datetime},
    {"CLOSED", FieldKind::text},
    {"OPENED", FieldKind::text},
}};

constexpr std::int64_t k_close_after_days = 14;

FieldValue deal_value(const Portal& portal, std::int64_t id, const DealRow& deal, std::size_t field,
                      std::string& scratch) {
    switch (field) {
    case d_id:
        return FieldValue::of(id);
    case d_title:
        scratch = portal.deal_title(id);
        return FieldValue::of_text(scratch);
    case d_type_id:
        return FieldValue::of_text("SALE");
    case d_category_id:
        return FieldValue::of(portal.deal_category(deal));
    case d_stage_id:
        return FieldValue::of_text(portal.stage_ref(deal.stage).status_id);
    case d_stage_semantic_id:
        return FieldValue::of_text(semantic_text(deal.semantic));
    case d_is_new:
        return FieldValue::of_text(portal.deal_is_new(deal) ? "Y" : "N");
    case d_currency_id:
        return FieldValue::of_text("EUR");
    case d_opportunity:
        return FieldValue::of(deal.opportunity);
    case d_assigned_by_id:
    case d_created_by_id:
    case d_modify_by_id:
        return FieldValue::of(deal.assigned_by);
    case d_date_create:
    case d_begindate:
        return FieldValue::of(deal.created);
    case d_date_modify:
        return FieldValue::of(deal.modified);
    case d_closedate:
        return FieldValue::of(deal.created + k_close_after_days * k_seconds_per_day);
    case d_closed:
        return FieldValue::of_text(deal.semantic == 'P' ? "N" : "Y");
    case d_opened:
        return FieldValue::of_text("Y");
    default:
        return FieldValue::none();
    }
}

// The old CRM proxies send every scalar as a string ("ID": "17", "OPPORTUNITY": "1500.00").
void write_deal(JsonWriter& w, const Portal& portal, std::int64_t id, const DealRow& deal,
                const std::vector<bool>& select, int offset_minutes) {
    std::string scratch;
    w.begin_object();
    for (std::size_t f = 0; f < k_deal_fields.size(); ++f) {
        if (!select[f]) {
            continue;
        }
        const auto value = deal_value(portal, id, deal, f, scratch);
        w.key(k_deal_fields[f].name);
        switch (k_deal_fields[f].kind) {
        case FieldKind::integer:
            w.str(f == d_opportunity ? std::to_string(value.number) + ".00"
                                     : std::to_string(value.number));
            break;
        case FieldKind::datetime:
            w.str(format_time(value.number, offset_minutes));
            break;
        case FieldKind::text:
            w.str(value.text);
        }
    }
    w.end_object();
}

CallResult deal_list(const Portal& portal, const Params& params, const MethodContext& context) {
    std::vector<Condition> conditions;
    compile_filter(find_param(params, "filter"), k_deal_fields,
                   {Strictness::lenient, context.offset_minutes}, conditions);
    std::vector<OrderKey> order;
    compile_order(find_param(params, "order"), k_deal_fields, Strictness::lenient, order);
    const auto select = compile_select(find_param(params, "select"), k_deal_fields);
    std::vector<std::size_t> matched;
    std::string scratch;
    for (std::size_t i = 0; i < portal.deal_count(); ++i) {
        const auto id = static_cast<std::int64_t>(i + 1);
        const auto& deal = *portal.deal(id);
        if (std::all_of(conditions.begin(), conditions.end(), [&](const Condition& c) {
                return matches(c, deal_value(portal, id, deal, c.field, scratch));
            })) {
            matched.push_back(i);
        }
    }
    // [U] Without `order`: by ID.
    sort_items(matched, order, [&](std::size_t i, std::size_t field, std::string& s) {
        const auto id = static_cast<std::int64_t>(i + 1);
        return deal_value(portal, id, *portal.deal(id), field, s);
    });
    const auto win = window(matched.size(), start_of(params));
    std::string body;
    JsonWriter w(body);
    w.begin_array();
    for (auto i = win.begin; i < win.end; ++i) {
        const auto id = static_cast<std::int64_t>(matched[i] + 1);
        write_deal(w, portal, id, *portal.deal(id), select, context.offset_minutes);
    }
    w.end_array();
    return success(std::move(body), win.total, win.next);
}

// [U] Not in the reference; the error texts are those of the CRM REST proxy.
CallResult deal_get(const Portal& portal, const Params& params, const MethodContext& context) {
    const auto* id_param = find_param(params, "id");
    const auto id = id_param == nullptr ? 0 : php_intval(*id_param);
    if (id <= 0) {
        return failure(400, "", "ID is not defined or invalid.");
    }
    const auto* deal = portal.deal(id);
    if (deal == nullptr) {
        return failure(400, "", "Not found");
    }
    std::string body;
    JsonWriter w(body);
    write_deal(w, portal, id, *deal, std::vector<bool>(k_deal_fields.size(), true),
               context.offset_minutes);
    return success(std::move(body));
}

const std::map<std::string_view, Method>& methods() {
    static const std::map<std::string_view, Method> k_methods{
        {"crm.stagehistory.list", &stage_history_list},
        {"crm.status.list", &status_list},
        {"crm.dealcategory.stage.list", &deal_category_stage_list},
        {"crm.category.list", &category_list},
        {"crm.deal.list", &deal_list},
        {"crm.deal.get", &deal_get},
    };
    return k_methods;
}

} // namespace

CallResult failure(int status, std::string error, std::string description) {
    CallResult r;
    r.failed = true;
    r.status = status;
    r.error = std::move(error);
    r.error_description = std::move(description);
    return r;
}

bool is_known_method(std::string_view method) { return methods().contains(method); }

CallResult call_method(const Portal& portal, std::string_view method, const Params& params,
                       const MethodContext& context) {
    const auto it = methods().find(method);
    if (it == methods().end()) {
        // [U] Not in the reference: what Bitrix24 answers for a method it does not know.
        return failure(404, "ERROR_METHOD_NOT_FOUND", "Method not found!");
    }
    return it->second(portal, params, context);
}

} // namespace crmsync::fakes::bitrix24
