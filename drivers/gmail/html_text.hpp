#pragma once

#include <string>
#include <string_view>

namespace crmsync::drivers::gmail {

// The text a reader sees in an HTML mail body (UTF-8 in, UTF-8 out), for templates to read:
// tags removed (with <script>, <style>, <head> and comments, content too); <br> is a line
// break, a block element (div, tr, li, h1-h6, table, blockquote...) starts a new line, a <p>
// stands apart by a blank line, table cells are separated by a space; whitespace runs in the source
// collapse to one space as a browser shows them; entities are decoded (named: the common set;
// numeric: all), &nbsp; becomes a plain space; each line is trimmed and runs of blank lines
// collapse to one. Never throws; unterminated tags or entities are read as far as they go.
std::string html_to_text(std::string_view html);

// Decodes the HTML entities of `text` (the set html_to_text knows); unknown ones stay.
std::string decode_entities(std::string_view text);

} // namespace crmsync::drivers::gmail
