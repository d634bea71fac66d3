// protoc-gen-ttrpc: for every service in a .proto file, writes
// `<file>.ttrpc.pb.h/.cc` with a server base class `<Name>Service`
// (one virtual method per RPC, registered with ember::ttrpc::Server) and a
// typed client stub `<Name>Client` (a trailing "Service" in the proto name is
// dropped first: AgentService -> AgentService / AgentClient).
#pragma once

#include <google/protobuf/compiler/code_generator.h>

#include <string>

namespace ember::ttrpc {

class TtrpcGenerator : public google::protobuf::compiler::CodeGenerator {
 public:
  bool Generate(const google::protobuf::FileDescriptor* file, const std::string& parameter,
                google::protobuf::compiler::GeneratorContext* context,
                std::string* error) const override;
  uint64_t GetSupportedFeatures() const override { return FEATURE_PROTO3_OPTIONAL; }
};

}  // namespace ember::ttrpc
