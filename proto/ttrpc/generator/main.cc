// protoc plugin entry point: protoc --plugin=protoc-gen-ttrpc=<this> --ttrpc_out=<dir>
#include <google/protobuf/compiler/plugin.h>

#include "proto/ttrpc/generator/ttrpc_generator.h"

int main(int argc, char* argv[]) {
  ember::ttrpc::TtrpcGenerator generator;
  return google::protobuf::compiler::PluginMain(argc, argv, &generator);
}
