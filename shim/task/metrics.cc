#include "shim/task/metrics.h"

#include "containerd/cgroups/v1/metrics.pb.h"
#include "containerd/cgroups/v2/metrics.pb.h"

namespace ember::shim {

namespace {

uint64_t stat_value(const ember::agent::v1::MemoryStats& m, const std::string& key) {
  auto it = m.stat().find(key);
  return it == m.stat().end() ? 0 : it->second;
}

google::protobuf::Any pack(const google::protobuf::Message& message) {
  google::protobuf::Any any;
  // Bare type URL: containerd's typeurl registry has no "type.googleapis.com/" names.
  any.set_type_url(message.GetTypeName());
  any.set_value(message.SerializeAsString());
  return any;
}

google::protobuf::Any v2_metrics(const ember::agent::v1::ContainerStatsResponse& s) {
  io::containerd::cgroups::v2::Metrics out;
  out.mutable_pids()->set_current(s.pids().current());
  out.mutable_pids()->set_limit(s.pids().limit());
  auto* cpu = out.mutable_cpu();
  cpu->set_usage_usec(s.cpu().usage_usec());
  cpu->set_user_usec(s.cpu().user_usec());
  cpu->set_system_usec(s.cpu().system_usec());
  cpu->set_nr_periods(s.cpu().nr_periods());
  cpu->set_nr_throttled(s.cpu().nr_throttled());
  cpu->set_throttled_usec(s.cpu().throttled_usec());
  const auto& m = s.memory();
  auto* mem = out.mutable_memory();
  mem->set_usage(m.usage());
  mem->set_usage_limit(m.limit());
  mem->set_swap_usage(m.swap_usage());
  mem->set_swap_limit(m.swap_limit());
  mem->set_anon(stat_value(m, "anon"));
  mem->set_file(stat_value(m, "file"));
  mem->set_kernel_stack(stat_value(m, "kernel_stack"));
  mem->set_slab(stat_value(m, "slab"));
  mem->set_sock(stat_value(m, "sock"));
  mem->set_shmem(stat_value(m, "shmem"));
  mem->set_file_mapped(stat_value(m, "file_mapped"));
  mem->set_file_dirty(stat_value(m, "file_dirty"));
  mem->set_file_writeback(stat_value(m, "file_writeback"));
  mem->set_anon_thp(stat_value(m, "anon_thp"));
  mem->set_inactive_anon(stat_value(m, "inactive_anon"));
  mem->set_active_anon(stat_value(m, "active_anon"));
  mem->set_inactive_file(m.inactive_file() ? m.inactive_file() : stat_value(m, "inactive_file"));
  mem->set_active_file(stat_value(m, "active_file"));
  mem->set_unevictable(stat_value(m, "unevictable"));
  mem->set_slab_reclaimable(stat_value(m, "slab_reclaimable"));
  mem->set_slab_unreclaimable(stat_value(m, "slab_unreclaimable"));
  mem->set_pgfault(stat_value(m, "pgfault"));
  mem->set_pgmajfault(stat_value(m, "pgmajfault"));
  mem->set_workingset_refault(stat_value(m, "workingset_refault"));
  mem->set_workingset_activate(stat_value(m, "workingset_activate"));
  mem->set_workingset_nodereclaim(stat_value(m, "workingset_nodereclaim"));
  mem->set_pgrefill(stat_value(m, "pgrefill"));
  mem->set_pgscan(stat_value(m, "pgscan"));
  mem->set_pgsteal(stat_value(m, "pgsteal"));
  mem->set_pgactivate(stat_value(m, "pgactivate"));
  mem->set_pgdeactivate(stat_value(m, "pgdeactivate"));
  mem->set_pglazyfree(stat_value(m, "pglazyfree"));
  mem->set_pglazyfreed(stat_value(m, "pglazyfreed"));
  mem->set_thp_fault_alloc(stat_value(m, "thp_fault_alloc"));
  mem->set_thp_collapse_alloc(stat_value(m, "thp_collapse_alloc"));
  auto* events = out.mutable_memory_events();
  events->set_max(m.failcnt());
  events->set_oom_kill(m.oom_kills());
  return pack(out);
}

google::protobuf::Any v1_metrics(const ember::agent::v1::ContainerStatsResponse& s) {
  io::containerd::cgroups::v1::Metrics out;
  out.mutable_pids()->set_current(s.pids().current());
  out.mutable_pids()->set_limit(s.pids().limit());
  auto* usage = out.mutable_cpu()->mutable_usage();
  usage->set_total(s.cpu().usage_usec() * 1000);
  usage->set_kernel(s.cpu().system_usec() * 1000);
  usage->set_user(s.cpu().user_usec() * 1000);
  for (uint64_t ns : s.cpu().percpu_usage_nsec()) usage->add_per_cpu(ns);
  auto* throttling = out.mutable_cpu()->mutable_throttling();
  throttling->set_periods(s.cpu().nr_periods());
  throttling->set_throttled_periods(s.cpu().nr_throttled());
  throttling->set_throttled_time(s.cpu().throttled_usec() * 1000);
  const auto& m = s.memory();
  auto* mem = out.mutable_memory();
  mem->set_cache(stat_value(m, "cache"));
  mem->set_rss(stat_value(m, "rss"));
  mem->set_rss_huge(stat_value(m, "rss_huge"));
  mem->set_mapped_file(stat_value(m, "mapped_file"));
  mem->set_dirty(stat_value(m, "dirty"));
  mem->set_writeback(stat_value(m, "writeback"));
  mem->set_pg_pg_in(stat_value(m, "pgpgin"));
  mem->set_pg_pg_out(stat_value(m, "pgpgout"));
  mem->set_pg_fault(stat_value(m, "pgfault"));
  mem->set_pg_maj_fault(stat_value(m, "pgmajfault"));
  mem->set_inactive_anon(stat_value(m, "inactive_anon"));
  mem->set_active_anon(stat_value(m, "active_anon"));
  mem->set_inactive_file(stat_value(m, "inactive_file"));
  mem->set_active_file(stat_value(m, "active_file"));
  mem->set_unevictable(stat_value(m, "unevictable"));
  mem->set_hierarchical_memory_limit(stat_value(m, "hierarchical_memory_limit"));
  mem->set_hierarchical_swap_limit(stat_value(m, "hierarchical_memsw_limit"));
  mem->set_total_cache(m.cache() ? m.cache() : stat_value(m, "total_cache"));
  mem->set_total_rss(m.rss() ? m.rss() : stat_value(m, "total_rss"));
  mem->set_total_rss_huge(stat_value(m, "total_rss_huge"));
  mem->set_total_mapped_file(stat_value(m, "total_mapped_file"));
  mem->set_total_dirty(stat_value(m, "total_dirty"));
  mem->set_total_writeback(stat_value(m, "total_writeback"));
  mem->set_total_pg_pg_in(stat_value(m, "total_pgpgin"));
  mem->set_total_pg_pg_out(stat_value(m, "total_pgpgout"));
  mem->set_total_pg_fault(stat_value(m, "total_pgfault"));
  mem->set_total_pg_maj_fault(stat_value(m, "total_pgmajfault"));
  mem->set_total_inactive_anon(stat_value(m, "total_inactive_anon"));
  mem->set_total_active_anon(stat_value(m, "total_active_anon"));
  mem->set_total_inactive_file(m.inactive_file() ? m.inactive_file() : stat_value(m, "total_inactive_file"));
  mem->set_total_active_file(stat_value(m, "total_active_file"));
  mem->set_total_unevictable(stat_value(m, "total_unevictable"));
  auto* u = mem->mutable_usage();
  u->set_usage(m.usage());
  u->set_limit(m.limit());
  u->set_max(m.max_usage());
  u->set_failcnt(m.failcnt());
  auto* swap = mem->mutable_swap();
  swap->set_usage(m.swap_usage());
  swap->set_limit(m.swap_limit());
  out.mutable_memory_oom_control()->set_oom_kill(m.oom_kills());
  return pack(out);
}

}  // namespace

google::protobuf::Any metrics_from_agent_stats(const ember::agent::v1::ContainerStatsResponse& stats) {
  return stats.cgroup_version() == 1 ? v1_metrics(stats) : v2_metrics(stats);
}

}  // namespace ember::shim
