#pragma once

// Drives a Zoho Creator fake through its /_fake/... control routes (creator_fake.hpp), for tests
// and benchmarks that run zoho_creator_fake as a process. Every call throws std::runtime_error
// when the fake cannot be reached or answers anything but 200.

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace crmsync::fakes {

class CreatorControl {
public:
    /// `base_url` is the fake's "http://127.0.0.1:PORT".
    explicit CreatorControl(const std::string& base_url) : m_client(base_url) {
        m_client.set_connection_timeout(std::chrono::seconds(2));
        m_client.set_read_timeout(std::chrono::seconds(10));
    }

    void add_token(const std::string& access_token) {
        post("/_fake/tokens", {{"token", access_token}});
    }
    /// The record as the report shows it (ID, Added_Time, Modified_Time...).
    nlohmann::json add_record(const nlohmann::json& fields) {
        return post("/_fake/records", fields);
    }
    /// Replaces the given fields and moves Modified_Time; returns the record.
    nlohmann::json edit_record(const std::string& id, const nlohmann::json& fields) {
        return post("/_fake/records/" + id, fields);
    }
    void delete_record(const std::string& id) { check(m_client.Delete("/_fake/records/" + id)); }
    /// Every record, in ID order.
    std::vector<nlohmann::json> records() {
        return check(m_client.Get("/_fake/records"))["records"].get<std::vector<nlohmann::json>>();
    }
    /// {"per_minute_limit"?: n, "time_zone"?: "UTC"|"+HH:MM", "reject_emails"?: [...],
    /// "no_records_status"?: 404|200}; answers the settings.
    nlohmann::json settings(const nlohmann::json& changes) {
        return post("/_fake/settings", changes);
    }
    /// {"requests", "throttled", "records", "paths": {path: n}}
    nlohmann::json stats() { return check(m_client.Get("/_fake/stats")); }
    /// One fault object or an array (tests/fakes/common/fault.hpp, plus "code").
    void inject_faults(const nlohmann::json& faults) { post("/_fake/faults", faults); }
    void clear_faults() { check(m_client.Delete("/_fake/faults")); }
    void set_clock_offset(std::chrono::milliseconds offset) {
        post("/_fake/clock?offset_ms=" + std::to_string(offset.count()), nlohmann::json::object());
    }

private:
    nlohmann::json post(const std::string& path, const nlohmann::json& body) {
        return check(m_client.Post(path, body.dump(), "application/json"));
    }
    static nlohmann::json check(const httplib::Result& res) {
        if (!res) {
            throw std::runtime_error("creator fake control: " + httplib::to_string(res.error()));
        }
        if (res->status != 200) {
            throw std::runtime_error("creator fake control: HTTP " + std::to_string(res->status) +
                                     ": " + res->body);
        }
        return nlohmann::json::parse(res->body);
    }

    httplib::Client m_client;
};

} // namespace crmsync::fakes
