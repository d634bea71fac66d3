#include "shim/bootstrap/flags.h"

namespace ember::shim {

namespace {

bool parse_bool(const std::string& name, const std::string& value) {
  // strconv.ParseBool's accepted spellings.
  if (value == "1" || value == "t" || value == "T" || value == "true" || value == "TRUE" || value == "True")
    return true;
  if (value == "0" || value == "f" || value == "F" || value == "false" || value == "FALSE" || value == "False")
    return false;
  throw FlagError("invalid boolean value \"" + value + "\" for -" + name);
}

}  // namespace

ShimFlags parse_flags(const std::vector<std::string>& argv) {
  ShimFlags flags;
  struct StringFlag {
    const char* name;
    std::string* target;
  };
  StringFlag strings[] = {{"namespace", &flags.ns},     {"address", &flags.address},
                          {"publish-binary", &flags.publish_binary},
                          {"id", &flags.id},            {"bundle", &flags.bundle},
                          {"socket", &flags.socket}};
  struct BoolFlag {
    const char* name;
    bool* target;
  };
  BoolFlag bools[] = {{"debug", &flags.debug}, {"v", &flags.version}};

  size_t i = 0;
  for (; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg.size() < 2 || arg[0] != '-') break;  // "" / "-" / positional: stop
    size_t dashes = arg[1] == '-' ? 2 : 1;
    if (dashes == 2 && arg.size() == 2) {  // "--" terminates flags
      ++i;
      break;
    }
    std::string body = arg.substr(dashes);
    if (body.empty() || body[0] == '-' || body[0] == '=') throw FlagError("bad flag syntax: " + arg);
    std::string name = body;
    std::string value;
    bool has_value = false;
    if (auto eq = body.find('='); eq != std::string::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_value = true;
    }
    bool matched = false;
    for (auto& f : bools) {
      if (name != f.name) continue;
      *f.target = has_value ? parse_bool(name, value) : true;
      matched = true;
    }
    for (auto& f : strings) {
      if (matched || name != f.name) continue;
      if (!has_value) {
        if (i + 1 >= argv.size()) throw FlagError("flag needs an argument: -" + name);
        value = argv[++i];
      }
      *f.target = value;
      matched = true;
    }
    if (!matched) throw FlagError("flag provided but not defined: -" + name);
  }
  if (i < argv.size()) {
    flags.action = argv[i++];
    flags.args.assign(argv.begin() + static_cast<long>(i), argv.end());
  }
  return flags;
}

ShimFlags parse_flags(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return parse_flags(args);
}

std::vector<std::string> format_flags(const ShimFlags& flags) {
  std::vector<std::string> out = {"-namespace", flags.ns, "-id", flags.id, "-address", flags.address};
  if (!flags.publish_binary.empty()) out.insert(out.end(), {"-publish-binary", flags.publish_binary});
  if (!flags.bundle.empty()) out.insert(out.end(), {"-bundle", flags.bundle});
  if (flags.debug) out.push_back("-debug");
  return out;
}

}  // namespace ember::shim
