#!/usr/bin/env python3
"""Writes marginal-grafana.json with Grafana's foundation SDK, so every panel, query, variable
and option is built through Grafana's own schema types:

    target/grafana-sdk-venv/bin/python dashboards/generate-grafana.py > dashboards/marginal-grafana.json

(`cargo xtask setup` installs the pinned SDK in that venv.) tests/tests/dashboards_grafana.rs
checks the JSON (every query valid PromQL over exported metrics) and that it is this script's
output. Panels are laid out by the SDK's grid builder, in order, 24 columns a line.

What the SDK does not model is added to its output at the end: `__inputs` and `__requires`,
the export-only fields Grafana's import dialog reads to ask for a Prometheus data source. It
also has no `definition` for query variables (the text Grafana's variable list shows; Grafana
fills it in from the query when the dashboard is saved).
"""
import json

from grafana_foundation_sdk.builders import (
    bargauge, common as cb, dashboard as db, prometheus, stat, statetimeline, table, timeseries)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat, QueryEditorMode

DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
I = 'instance=~"$instance"'
IM = 'instance=~"$instance", map=~"$map"'
IMP = 'instance=~"$instance", map=~"$map", path=~"$path"'
PATH_LEGEND = "{{instance}} {{map}}/{{path}}"
DASHED = {"dash": [10, 10], "fill": "dash"}

board = (db.Dashboard("marginal: multipath paths")
         .uid("marginal-paths")
         .description("marginal: marginal (flaky) dm-multipath paths: states, sampled error rates "
                      "against thresholds, kernel-counted failures, sampling progress and eBPF cost.")
         .tags(["marginal", "multipath", "storage"])
         .editable()
         .tooltip(dm.DashboardCursorSync.CROSSHAIR)
         .refresh("30s")
         .time("now-6h", "now")
         .timezone("")
         .version(1)
         .annotation(db.AnnotationQuery().name("Annotations & Alerts").built_in(1)
                     .datasource(dm.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
                     .enable(True).hide(True).icon_color("rgba(0, 211, 255, 1)").type("dashboard")))
next_id = [1]


def pid():
    i = next_id[0]
    next_id[0] += 1
    return i


def row(title):
    board.with_row(db.Row(title).id(pid()))


def target(expr, legend="", instant=False, fmt=PromQueryFormat.TIME_SERIES):
    q = (prometheus.Dataquery().expr(expr).legend_format(legend or "__auto")
         .editor_mode(QueryEditorMode.CODE).format(fmt).datasource(DS))
    return q.instant() if instant else q.range()


def panel(builder, title, desc, targets, w, h, unit="short"):
    """Common to every panel: id, title, description, data source, queries (refIds A, B, ...),
    size (the SDK places it), unit."""
    builder.id(pid()).title(title).description(desc).datasource(DS).span(w).height(h).unit(unit)
    for i, t in enumerate(targets):
        if not isinstance(t, prometheus.Dataquery):
            t = target(*t)
        builder.with_target(t.ref_id(chr(ord("A") + i)))
    board.with_panel(builder)
    return builder


def ts(title, desc, targets, w, h=8, unit="short", stack=False, bars=False, overrides=(),
       min0=True):
    p = (timeseries.Panel()
         .draw_style(common.GraphDrawStyle.BARS if bars else common.GraphDrawStyle.LINE)
         .line_width(1).fill_opacity(60 if bars else 10)
         .show_points(common.VisibilityMode.NEVER).span_nulls(False)
         .stacking(cb.StackingConfig()
                   .mode(common.StackingMode.NORMAL if stack else common.StackingMode.NONE)
                   .group("A"))
         .legend(cb.VizLegendOptions().display_mode(common.LegendDisplayMode.TABLE)
                 .placement(common.LegendPlacement.BOTTOM).show_legend(True)
                 .calcs(["lastNotNull", "max"]))
         .tooltip(cb.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                  .sort(common.SortOrder.DESCENDING)))
    if min0:
        p.min(0)
    for matcher, properties in overrides:
        p.with_override(matcher, properties)
    return panel(p, title, desc, targets, w, h, unit)


def stat_panel(title, desc, expr, w=4, h=4, red_at=1, color_mode=common.BigValueColorMode.BACKGROUND):
    steps = [dm.Threshold(color="green", value=None)]
    if red_at is not None:
        steps.append(dm.Threshold(color="red", value=red_at))
    p = (stat.Panel()
         .color_mode(color_mode).graph_mode(common.BigValueGraphMode.NONE)
         .justify_mode(common.BigValueJustifyMode.CENTER).text_mode(common.BigValueTextMode.VALUE)
         .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
         .thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps))
         .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS)))
    return panel(p, title, desc, [target(expr, instant=True)], w, h)


def threshold_override(ref):
    return (dm.MatcherConfig(id_val="byFrameRefID", options=ref),
            [dm.DynamicConfigValue(id_val="color", value={"fixedColor": "red", "mode": "fixed"}),
             dm.DynamicConfigValue(id_val="custom.lineStyle", value=DASHED),
             dm.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
             dm.DynamicConfigValue(id_val="custom.lineWidth", value=2)])


def table_panel(title, desc, targets, w, h, renames, hide=("Time", "__name__", "job"), merge=False):
    p = (table.Panel().show_header(True).cell_height(common.TableCellHeight.SM)
         .footer(cb.TableFooterOptions().show(False).reducer([])))
    if merge:
        p.with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
    p.with_transformation(dm.DataTransformerConfig(id_val="organize", options={
        "excludeByName": {k: True for k in hide}, "renameByName": renames}))
    return panel(p, title, desc, targets, w, h)


def table_target(expr):
    return target(expr, instant=True, fmt=PromQueryFormat.TABLE)


# ---------------------------------------------------------------- overview
row("Overview")
stat_panel("Marginal paths", "Paths whose last sampling run was above their map's threshold.",
           f'sum(marginal_path_state{{{I}, state="marginal"}}) or vector(0)')
stat_panel("Held out by marginal", "Paths marginal took out of service and owes a return.",
           f'sum(marginal_path_failed_by_marginal{{{I}}}) or vector(0)')
stat_panel("Kept as last path", "Paths whose last sampling run was marginal but that are in service, because they were their map's last active path.",
           f'count(marginal_path_last_verdict{{{I}, verdict="marginal"}} == 1 and on (instance, job, map, path, device) marginal_path_active == 1) or vector(0)')
stat_panel("Maps on one active path", "Maps with more than one path but only one active.",
           f'count(marginal_map_active_paths{{{I}}} == 1 and marginal_map_paths{{{I}}} > 1) or vector(0)')
stat_panel("Signals not live", "Kernel signals that are not attached (see `marginal status`).",
           f'count(marginal_signal_live{{{I}}} == 0) or vector(0)')
stat_panel("Daemons", "marginal daemons answering scrapes.", f'count(marginal_build_info{{{I}}})',
           red_at=None, color_mode=common.BigValueColorMode.VALUE)

ts("Paths by state across hosts", "How many paths each host has in each state (healthy, suspect, sampling, sampling_in_service, marginal, slow).",
   [(f'sum by (instance, state) (marginal_map_paths_in_state{{{IM}}})', "{{instance}} {{state}}")], 12, stack=True)
STATES = ["healthy", "suspect", "sampling", "sampling_in_service", "marginal", "slow"]
STATE_COLORS = ["green", "yellow", "blue", "purple", "red", "orange"]
panel(statetimeline.Panel()
      .merge_values(True).show_value(common.VisibilityMode.NEVER)
      .align_value(common.TimelineValueAlignment.LEFT).row_height(0.9)
      .legend(cb.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
              .placement(common.LegendPlacement.BOTTOM).show_legend(True))
      .mappings([dm.ValueMap(options={
          str(i): dm.ValueMappingResult(text=s, color=STATE_COLORS[i], index=i)
          for i, s in enumerate(STATES)})])
      .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color("green")),
      "Path state", "State of each path over time.",
      [(f'''sum by (instance, map, path) (
    marginal_path_state{{{IMP}, state="suspect"}} * 1
  or marginal_path_state{{{IMP}, state="sampling"}} * 2
  or marginal_path_state{{{IMP}, state="sampling_in_service"}} * 3
  or marginal_path_state{{{IMP}, state="marginal"}} * 4
  or marginal_path_state{{{IMP}, state="slow"}} * 5
  or marginal_path_state{{{IMP}, state="healthy"}} * 0
)''', PATH_LEGEND)], 12, 8)

# ---------------------------------------------------------------- error rates
row("Error rates")
ts("Sampled error rate vs threshold",
   "Error rate of each path's last finished sampling run (errors * 1000 / reads), against its map's marginal_path_err_rate_threshold (dashed). Above the line is marginal.",
   [(f'marginal_path_error_rate_permille{{{IMP}}}', PATH_LEGEND),
    (f'max by (instance, map) (marginal_map_err_rate_threshold_permille{{{IM}}})', "threshold {{instance}} {{map}}")],
   12, 9, unit="suffix:‰", overrides=[threshold_override("B")])
ts("Error rate of the run in progress",
   "Errors per thousand reads so far in each sampling run still running, against the map's threshold (dashed).",
   [(f'1000 * marginal_path_sampling_run_errors{{{IMP}}} / (marginal_path_sampling_run_reads{{{IMP}}} > 0)', PATH_LEGEND),
    (f'max by (instance, map) (marginal_map_err_rate_threshold_permille{{{IM}}})', "threshold {{instance}} {{map}}")],
   12, 9, unit="suffix:‰", overrides=[threshold_override("B")])

# ---------------------------------------------------------------- latency
row("Latency (slow paths)")
ts("Read latency, p99 per path",
   "99th percentile latency of each path's reads, measured in the kernel (maps with marginal_path_slow_factor only).",
   [(f'histogram_quantile(0.99, sum by (instance, map, path, le) (rate(marginal_path_io_latency_seconds_bucket{{{IMP}, direction="read"}}[$__rate_interval])))', PATH_LEGEND)],
   8, unit="s")
ts("Mean latency per path",
   "Mean latency of each path's reads and writes together, per interval: a slow path stands apart from its siblings.",
   [(f'sum by (instance, map, path) (rate(marginal_path_io_latency_seconds_sum{{{IMP}}}[$__rate_interval])) / (sum by (instance, map, path) (rate(marginal_path_io_latency_seconds_count{{{IMP}}}[$__rate_interval])) > 0)', PATH_LEGEND)],
   8, unit="s")
ts("Latency against siblings",
   "Each path's mean latency over the last slow-path window divided by its active siblings' (median); above the map's marginal_path_slow_factor the path is slow.",
   [(f'marginal_path_latency_ratio{{{IMP}}}', PATH_LEGEND)],
   8)

# ---------------------------------------------------------------- failures
row("Failures")
ts("Path failures (kernel)", "Path failures and double failures (a second failure within marginal_path_double_failed_time) the eBPF programs counted, per interval.",
   [(f'sum by (instance, map, path) (increase(marginal_path_failures_total{{{IMP}}}[$__rate_interval]))', "failures " + PATH_LEGEND),
    (f'sum by (instance, map, path) (increase(marginal_path_double_failures_total{{{IMP}}}[$__rate_interval]))', "double " + PATH_LEGEND)],
   8, bars=True)
ts("I/O errors (kernel)", "Failed I/O requests on each path device, per second, as the eBPF programs counted them.",
   [(f'sum by (instance, map, path) (rate(marginal_path_io_errors_total{{{IMP}}}[$__rate_interval]))', PATH_LEGEND)],
   8, unit="cps")
ts("Taken out / returned by marginal", "Times marginal failed a path (took it out of service) or reinstated it, per interval.",
   [(f'sum by (instance, map, path) (increase(marginal_path_failed_by_daemon_total{{{IMP}}}[$__rate_interval]))', "out " + PATH_LEGEND),
    (f'sum by (instance, map, path) (increase(marginal_path_returned_by_daemon_total{{{IMP}}}[$__rate_interval]))', "back " + PATH_LEGEND)],
   8, bars=True)
ts("Active paths per map", "Paths dm-mpath has active in each map, and the map's paths (dashed).",
   [(f'marginal_map_active_paths{{{IM}}}', "active {{instance}} {{map}}"),
    (f'marginal_map_paths{{{IM}}}', "paths {{instance}} {{map}}")],
   12, overrides=[(dm.MatcherConfig(id_val="byFrameRefID", options="B"),
                   [dm.DynamicConfigValue(id_val="custom.lineStyle", value=DASHED),
                    dm.DynamicConfigValue(id_val="custom.fillOpacity", value=0)])])
table_panel("Paths now", "Every path with its state, whether it is active, whether marginal holds it out, its last sampled rate, and how fast marginal took it out the last time (second failure to out of service).",
            [table_target(f'marginal_path_state{{{IMP}}} == 1'),
             table_target(f'marginal_path_active{{{IMP}}}'),
             table_target(f'marginal_path_failed_by_marginal{{{IMP}}}'),
             table_target(f'marginal_path_error_rate_permille{{{IMP}}}'),
             table_target(f'marginal_path_last_reaction_seconds{{{IMP}}}')],
            12, 8, {"Value #A": "in state", "Value #B": "active", "Value #C": "held out",
                    "Value #D": "last rate ‰", "Value #E": "last reaction (s)"},
            hide=("Time", "__name__", "job", "Value #A"), merge=True)

# ---------------------------------------------------------------- sampling
row("Sampling")
ts("Sampling reads and errors", "Direct reads the sampler issued per second, and how many failed or timed out.",
   [(f'sum by (instance, map, path) (rate(marginal_path_sampling_reads_total{{{IMP}}}[$__rate_interval]))', "reads " + PATH_LEGEND),
    (f'sum by (instance, map, path) (rate(marginal_path_sampling_errors_total{{{IMP}}}[$__rate_interval]))', "errors " + PATH_LEGEND),
    (f'sum by (instance, map, path) (rate(marginal_path_sampling_timeouts_total{{{IMP}}}[$__rate_interval]))', "timeouts " + PATH_LEGEND)],
   12, unit="rps")
ts("Run in progress", "Reads and errors so far in each sampling run still running.",
   [(f'marginal_path_sampling_run_reads{{{IMP}}}', "reads " + PATH_LEGEND),
    (f'marginal_path_sampling_run_errors{{{IMP}}}', "errors " + PATH_LEGEND)],
   12)
ts("Sampling runs finished", "Sampling runs that ended (with a verdict), per interval.",
   [(f'sum by (instance, map, path) (increase(marginal_path_sampling_runs_total{{{IMP}}}[$__rate_interval]))', PATH_LEGEND)],
   8, bars=True)
panel(bargauge.Panel()
      .display_mode(common.BarGaugeDisplayMode.BASIC).orientation(common.VizOrientation.HORIZONTAL)
      .show_unfilled(True)
      .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
      .min(0),
      "Next recheck", "Time until each marginal path is sampled again.",
      [target(f'marginal_path_next_recheck_seconds{{{IMP}}}', PATH_LEGEND, instant=True)], 8, 8, unit="s")
table_panel("Last verdict", "Verdict of each path's last finished sampling run (none before the first).",
            [table_target(f'marginal_path_last_verdict{{{IMP}}} == 1')],
            8, 8, {}, hide=("Time", "__name__", "job", "Value"))

# ---------------------------------------------------------------- daemon & eBPF
row("Daemon and eBPF cost")
ts("eBPF CPU", "CPU time the eBPF programs take, as a share of one CPU (kernel bpf_stats).",
   [(f'sum by (instance, program) (rate(marginal_ebpf_program_run_seconds_total{{{I}}}[$__rate_interval]))', "{{instance}} {{program}}")],
   8, unit="percentunit")
ts("eBPF runs", "Runs of each eBPF program per second.",
   [(f'sum by (instance, program) (rate(marginal_ebpf_program_runs_total{{{I}}}[$__rate_interval]))', "{{instance}} {{program}}")],
   8, unit="ops")
ts("eBPF time per run", "Average time of one run of each eBPF program.",
   [(f'''sum by (instance, program) (rate(marginal_ebpf_program_run_seconds_total{{{I}}}[$__rate_interval]))
  / sum by (instance, program) (rate(marginal_ebpf_program_runs_total{{{I}}}[$__rate_interval]) > 0)''', "{{instance}} {{program}}")],
   8, unit="s")
table_panel("Daemons", "Version, actuator and uptime of each daemon.",
            [table_target(f'''marginal_uptime_seconds{{{I}}}
  * on (instance, job) group_left (version) marginal_build_info
  * on (instance, job) group_left (actuator) marginal_actuator_info''')],
            8, 7, {"Value": "uptime"}).override_by_name(
                "uptime", [dm.DynamicConfigValue(id_val="unit", value="s")])
table_panel("Signals", "Kernel signals and whether they are live (1) on each host.",
            [table_target(f'marginal_signal_live{{{I}}}')], 6, 7, {"Value": "live"})
table_panel("Maps", "Each map's active paths, whether checking is on, and its effective marginal_path_* settings.",
            [table_target(f'marginal_map_paths{{{IM}}}'),
             table_target(f'marginal_map_active_paths{{{IM}}}'),
             table_target(f'marginal_map_checking{{{IM}}}'),
             table_target(f'marginal_map_double_failed_time_seconds{{{IM}}}'),
             table_target(f'marginal_map_err_sample_time_seconds{{{IM}}}'),
             table_target(f'marginal_map_err_rate_threshold_permille{{{IM}}}'),
             table_target(f'marginal_map_err_recheck_gap_time_seconds{{{IM}}}')],
            10, 7, {"Value #A": "paths", "Value #B": "active", "Value #C": "checking",
                    "Value #D": "double failed s", "Value #E": "sample s", "Value #F": "threshold ‰",
                    "Value #G": "recheck gap s"}, merge=True)


# ---------------------------------------------------------------- fleet
def fleet_row():
    """Target ports across every host (what marginal-rules.yml's marginal.fleet group records,
    computed here from the exporter's metrics so the row works without the rules loaded),
    which paths go through which port, and FC port health. Hosts are not filtered: the point
    is what many hosts have in common."""
    row("Fleet: target ports")
    marginal = ('marginal_path_state{state=~"marginal|slow"} * on (instance, job, map, path, device) '
                'group_left (transport, target_port) marginal_path_info{target_port!=""}')
    hosts_marginal = f'count by (transport, target_port) (count by (instance, transport, target_port) ({marginal}))'
    paths_marginal = f'count by (transport, target_port) ({marginal})'
    info = 'marginal_path_info{target_port!=""}'
    table_panel("Target ports with marginal paths", "Per target port (FC WWPN, iSCSI portal, NVMe-oF address, SAS address), across all hosts: hosts and paths that are marginal (or slow) behind it, out of all. Marginal paths on two or more hosts behind one port point at the port, not the hosts.",
                [table_target(hosts_marginal),
                 table_target(paths_marginal),
                 table_target(f'count by (transport, target_port) (count by (instance, transport, target_port) ({info})) and on (transport, target_port) {paths_marginal}'),
                 table_target(f'count by (transport, target_port) ({info}) and on (transport, target_port) {paths_marginal}')],
                12, 8, {"Value #A": "hosts marginal", "Value #B": "paths marginal", "Value #C": "hosts", "Value #D": "paths"},
                merge=True)
    ts("Hosts with marginal paths per target port", "How many hosts have a marginal (or slow) path behind each target port, over time.",
       [(hosts_marginal, "{{transport}} {{target_port}}")], 12, bars=True)
    table_panel("Paths and their ports", "Each path with its state, transport, host adapter and ports (marginal_path_info).",
                [table_target(f'marginal_path_state{{{IMP}}} * on (instance, job, map, path, device) group_left (transport, host, host_port, target_port, target_node) marginal_path_info')],
                24, 8, {}, hide=("Time", "__name__", "job", "Value"))
    ts("FC host port errors", "Link failures, loss of sync/signal, CRC and other errors, and FPIN notifications each HBA port counted, per interval (kernel fc_host statistics).",
       [(f'sum by (instance, host, statistic) (increase(marginal_fc_host_statistic_total{{{I}, statistic=~"link_failure_count|loss_of_sync_count|loss_of_signal_count|prim_seq_protocol_err_count|invalid_tx_word_count|invalid_crc_count|error_frames|fpin_li|fpin_cn|fpin_dn"}}[$__rate_interval]))', "{{instance}} {{host}} {{statistic}}")],
       12, bars=True)
    ts("FPIN per remote port", "Fabric notifications (link integrity, congestion, delivery) the kernel counted per FC remote port, per interval: the fabric naming a degrading port.",
       [(f'sum by (instance, target_port, statistic) (increase(marginal_fc_rport_statistic_total{{{I}, statistic=~"fpin_li|fpin_cn|fpin_dn"}}[$__rate_interval]))', "{{instance}} {{target_port}} {{statistic}}")],
       12, bars=True)


fleet_row()


def query_var(name, label, query):
    return (db.QueryVariable(name).label(label).datasource(DS)
            .query({"query": query, "refId": "StandardVariableQuery"})
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(True).all_value(".*")
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"])))


board.with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus")
                    .current(dm.VariableOption(selected=False, text="Prometheus", value="${DS_PROMETHEUS}")))
board.with_variable(query_var("instance", "Host", "label_values(marginal_build_info, instance)"))
board.with_variable(query_var("map", "Map", 'label_values(marginal_map_paths{instance=~"$instance"}, map)'))
board.with_variable(query_var("path", "Path", 'label_values(marginal_path_active{instance=~"$instance", map=~"$map"}, path)'))

out = json.loads(JSONEncoder(sort_keys=False, indent=2).encode(board.build()))
# Export-only fields the SDK has no type for: Grafana's import dialog reads them.
out = {
    "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus",
                  "description": "Prometheus that scrapes marginal's /metrics",
                  "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}],
    "__requires": [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "11.6.0"},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
        {"type": "panel", "id": "state-timeline", "name": "State timeline", "version": ""},
        {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
        {"type": "panel", "id": "table", "name": "Table", "version": ""},
        {"type": "panel", "id": "bargauge", "name": "Bar gauge", "version": ""},
    ],
    **out,
}
print(json.dumps(out, indent=2, ensure_ascii=False))
