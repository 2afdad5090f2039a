#pragma once

// Drives a People API fake through its /_fake/... control routes (people_fake.hpp), for tests
// and benchmarks that run people_fake as a process. Every call throws std::runtime_error when
// the fake cannot be reached or answers anything but 200.

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <stdexcept>
#include <string>

namespace crmsync::fakes {

class PeopleControl {
public:
    /// `base_url` is the fake's "http://127.0.0.1:PORT".
    explicit PeopleControl(const std::string& base_url) : m_client(base_url) {
        m_client.set_connection_timeout(std::chrono::seconds(2));
        m_client.set_read_timeout(std::chrono::seconds(10));
    }

    void add_user(const std::string& user, const std::string& access_token,
                  const std::string& refresh_token = "") {
        post("/_fake/users",
             {{"user", user}, {"access_token", access_token}, {"refresh_token", refresh_token}});
    }
    /// The stored Person with every field (resourceName, etag, metadata...).
    nlohmann::json add_contact(const std::string& user, const nlohmann::json& person) {
        return post(contacts_path(user), person);
    }
    /// Replaces the given top-level fields; returns the Person.
    nlohmann::json edit_contact(const std::string& user, const std::string& resource_name,
                                const nlohmann::json& fields) {
        return post(contacts_path(user) + "/" + resource_name, fields);
    }
    void delete_contact(const std::string& user, const std::string& resource_name) {
        check(m_client.Delete(contacts_path(user) + "/" + resource_name));
    }
    /// {"contacts": [live Persons], "deleted": [resourceNames]}
    nlohmann::json contacts(const std::string& user) {
        return check(m_client.Get(contacts_path(user)));
    }
    void expire_sync_tokens(const std::string& user) {
        post("/_fake/users/" + user + "/expire_sync_tokens", nlohmann::json::object());
    }
    /// {"per_minute_limit"?: n, "expired_sync_token_status"?: 400|410}; answers the settings.
    nlohmann::json settings(const nlohmann::json& changes) {
        return post("/_fake/settings", changes);
    }
    /// {"users": {user: {"requests","throttled","contacts"}}, "paths": {path: n}}
    nlohmann::json stats() { return check(m_client.Get("/_fake/stats")); }
    /// One fault object or an array (tests/fakes/common/fault.hpp).
    void inject_faults(const nlohmann::json& faults) { post("/_fake/faults", faults); }
    void clear_faults() { check(m_client.Delete("/_fake/faults")); }
    void set_clock_offset(std::chrono::milliseconds offset) {
        post("/_fake/clock?offset_ms=" + std::to_string(offset.count()), nlohmann::json::object());
    }

private:
    static std::string contacts_path(const std::string& user) {
        return "/_fake/users/" + user + "/contacts";
    }
    nlohmann::json post(const std::string& path, const nlohmann::json& body) {
        return check(m_client.Post(path, body.dump(), "application/json"));
    }
    static nlohmann::json check(const httplib::Result& res) {
        if (!res) {
            throw std::runtime_error("people fake control: " + httplib::to_string(res.error()));
        }
        if (res->status != 200) {
            throw std::runtime_error("people fake control: HTTP " + std::to_string(res->status) +
                                     ": " + res->body);
        }
        return nlohmann::json::parse(res->body);
    }

    httplib::Client m_client;
};

} // namespace crmsync::fakes
