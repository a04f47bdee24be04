#!/usr/bin/env python3
"""Writes marginal-grafana.json: python3 dashboards/generate-grafana.py > dashboards/marginal-grafana.json

The dashboard is data; this is its source, kept so panels are edited in one readable place.
tests/tests/dashboards_grafana.rs checks the JSON (every query valid PromQL over exported metrics).
"""
import json

DS = {"type": "prometheus", "uid": "${datasource}"}
I = 'instance=~"$instance"'
IM = 'instance=~"$instance", map=~"$map"'
IMP = 'instance=~"$instance", map=~"$map", path=~"$path"'
PATH_LEGEND = "{{instance}} {{map}}/{{path}}"

panels = []
next_id = [1]
y = [0]

def pid():
    i = next_id[0]; next_id[0] += 1; return i

def row(title):
    panels.append({"type": "row", "title": title, "id": pid(), "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y[0]}, "panels": []})
    y[0] += 1

def target(expr, legend="", ref="A", instant=False, fmt="time_series"):
    t = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend or "__auto",
         "range": not instant, "instant": instant, "editorMode": "code"}
    if fmt != "time_series":
        t["format"] = fmt
    return t

def panel(kind, title, desc, targets, x, w, h, unit="short", extra=None, custom=None, overrides=None, options=None):
    p = {"type": kind, "title": title, "description": desc, "id": pid(), "datasource": DS,
         "gridPos": {"h": h, "w": w, "x": x, "y": y[0]},
         "targets": [t if isinstance(t, dict) else target(*t) for t in targets],
         "fieldConfig": {"defaults": {"unit": unit, "custom": custom or {}}, "overrides": overrides or []},
         "options": options or {}}
    for i, t in enumerate(p["targets"]):
        t["refId"] = chr(ord("A") + i)
    if extra:
        p.update(extra)
    panels.append(p)
    return p

def ts(title, desc, targets, x, w, h=8, unit="short", stack=False, bars=False, overrides=None, min0=True):
    custom = {"drawStyle": "bars" if bars else "line", "lineWidth": 1, "fillOpacity": 60 if bars else 10,
              "showPoints": "never", "spanNulls": False,
              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    p = panel("timeseries", title, desc, targets, x, w, h, unit, custom=custom, overrides=overrides,
              options={"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                                  "calcs": ["lastNotNull", "max"]},
                       "tooltip": {"mode": "multi", "sort": "desc"}})
    if min0:
        p["fieldConfig"]["defaults"]["min"] = 0
    return p

def stat(title, desc, expr, x, w=4, h=4, red_at=1, color_mode="background"):
    p = panel("stat", title, desc, [target(expr, instant=True)], x, w, h,
              options={"colorMode": color_mode, "graphMode": "none", "justifyMode": "center",
                       "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                       "textMode": "value"})
    steps = [{"color": "green", "value": None}]
    if red_at is not None:
        steps.append({"color": "red", "value": red_at})
    p["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": steps}
    p["fieldConfig"]["defaults"]["color"] = {"mode": "thresholds"}
    return p

def threshold_override(ref):
    return {"matcher": {"id": "byFrameRefID", "options": ref},
            "properties": [{"id": "color", "value": {"fixedColor": "red", "mode": "fixed"}},
                           {"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
                           {"id": "custom.fillOpacity", "value": 0},
                           {"id": "custom.lineWidth", "value": 2}]}

def table(title, desc, targets, x, w, h, renames, hide=("Time", "__name__", "job"), merge=False):
    p = panel("table", title, desc, targets, x, w, h,
              options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}})
    trans = []
    if merge:
        trans.append({"id": "merge", "options": {}})
    trans.append({"id": "organize", "options": {
        "excludeByName": {k: True for k in hide},
        "renameByName": renames}})
    p["transformations"] = trans
    return p

# ---------------------------------------------------------------- overview
row("Overview")
stat("Marginal paths", "Paths whose last sampling run was above their map's threshold.",
     f'sum(marginal_path_state{{{I}, state="marginal"}}) or vector(0)', 0)
stat("Held out by marginal", "Paths marginal took out of service and owes a return.",
     f'sum(marginal_path_failed_by_marginal{{{I}}}) or vector(0)', 4)
stat("Kept as last path", "Paths whose last sampling run was marginal but that are in service, because they were their map's last active path.",
     f'count(marginal_path_last_verdict{{{I}, verdict="marginal"}} == 1 and on (instance, job, map, path, device) marginal_path_active == 1) or vector(0)', 8)
stat("Maps on one active path", "Maps with more than one path but only one active.",
     f'count(marginal_map_active_paths{{{I}}} == 1 and marginal_map_paths{{{I}}} > 1) or vector(0)', 12)
stat("Signals not live", "Kernel signals that are not attached (see `marginal status`).",
     f'count(marginal_signal_live{{{I}}} == 0) or vector(0)', 16)
stat("Daemons", "marginal daemons answering scrapes.", f'count(marginal_build_info{{{I}}})', 20,
     red_at=None, color_mode="value")
y[0] += 4

ts("Paths by state across hosts", "How many paths each host has in each state (healthy, suspect, sampling, sampling_in_service, marginal).",
   [(f'sum by (instance, state) (marginal_map_paths_in_state{{{IM}}})', "{{instance}} {{state}}")], 0, 12, stack=True)
st = panel("state-timeline", "Path state", "State of each path over time.",
           [(f'''sum by (instance, map, path) (
    marginal_path_state{{{IMP}, state="suspect"}} * 1
  or marginal_path_state{{{IMP}, state="sampling"}} * 2
  or marginal_path_state{{{IMP}, state="sampling_in_service"}} * 3
  or marginal_path_state{{{IMP}, state="marginal"}} * 4
  or marginal_path_state{{{IMP}, state="healthy"}} * 0
)''', PATH_LEGEND)], 12, 12, 8,
           options={"mergeValues": True, "showValue": "never", "alignValue": "left", "rowHeight": 0.9,
                    "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}})
st["fieldConfig"]["defaults"]["mappings"] = [{"type": "value", "options": {
    "0": {"text": "healthy", "color": "green", "index": 0},
    "1": {"text": "suspect", "color": "yellow", "index": 1},
    "2": {"text": "sampling", "color": "blue", "index": 2},
    "3": {"text": "sampling_in_service", "color": "purple", "index": 3},
    "4": {"text": "marginal", "color": "red", "index": 4}}}]
st["fieldConfig"]["defaults"]["color"] = {"mode": "fixed", "fixedColor": "green"}
y[0] += 8

# ---------------------------------------------------------------- error rates
row("Error rates")
ts("Sampled error rate vs threshold",
   "Error rate of each path's last finished sampling run (errors * 1000 / reads), against its map's marginal_path_err_rate_threshold (dashed). Above the line is marginal.",
   [(f'marginal_path_error_rate_permille{{{IMP}}}', PATH_LEGEND),
    (f'max by (instance, map) (marginal_map_err_rate_threshold_permille{{{IM}}})', "threshold {{instance}} {{map}}")],
   0, 12, 9, unit="suffix:‰", overrides=[threshold_override("B")])
ts("Error rate of the run in progress",
   "Errors per thousand reads so far in each sampling run still running, against the map's threshold (dashed).",
   [(f'1000 * marginal_path_sampling_run_errors{{{IMP}}} / (marginal_path_sampling_run_reads{{{IMP}}} > 0)', PATH_LEGEND),
    (f'max by (instance, map) (marginal_map_err_rate_threshold_permille{{{IM}}})', "threshold {{instance}} {{map}}")],
   12, 12, 9, unit="suffix:‰", overrides=[threshold_override("B")])
y[0] += 9

# ---------------------------------------------------------------- failures
row("Failures")
ts("Path failures (kernel)", "Path failures and double failures (a second failure within marginal_path_double_failed_time) the eBPF programs counted, per interval.",
   [(f'sum by (instance, map, path) (increase(marginal_path_failures_total{{{IMP}}}[$__rate_interval]))', "failures " + PATH_LEGEND),
    (f'sum by (instance, map, path) (increase(marginal_path_double_failures_total{{{IMP}}}[$__rate_interval]))', "double " + PATH_LEGEND)],
   0, 8, bars=True)
ts("I/O errors (kernel)", "Failed I/O requests on each path device, per second, as the eBPF programs counted them.",
   [(f'sum by (instance, map, path) (rate(marginal_path_io_errors_total{{{IMP}}}[$__rate_interval]))', PATH_LEGEND)],
   8, 8, unit="cps")
ts("Taken out / returned by marginal", "Times marginal failed a path (took it out of service) or reinstated it, per interval.",
   [(f'sum by (instance, map, path) (increase(marginal_path_failed_by_daemon_total{{{IMP}}}[$__rate_interval]))', "out " + PATH_LEGEND),
    (f'sum by (instance, map, path) (increase(marginal_path_returned_by_daemon_total{{{IMP}}}[$__rate_interval]))', "back " + PATH_LEGEND)],
   16, 8, bars=True)
y[0] += 8
ts("Active paths per map", "Paths dm-mpath has active in each map, and the map's paths (dashed).",
   [(f'marginal_map_active_paths{{{IM}}}', "active {{instance}} {{map}}"),
    (f'marginal_map_paths{{{IM}}}', "paths {{instance}} {{map}}")],
   0, 12, overrides=[{"matcher": {"id": "byFrameRefID", "options": "B"},
                      "properties": [{"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
                                     {"id": "custom.fillOpacity", "value": 0}]}])
table("Paths now", "Every path with its state, whether it is active, whether marginal holds it out, its last sampled rate, and how fast marginal took it out the last time (second failure to out of service).",
      [target(f'marginal_path_state{{{IMP}}} == 1', instant=True, fmt="table"),
       target(f'marginal_path_active{{{IMP}}}', instant=True, fmt="table"),
       target(f'marginal_path_failed_by_marginal{{{IMP}}}', instant=True, fmt="table"),
       target(f'marginal_path_error_rate_permille{{{IMP}}}', instant=True, fmt="table"),
       target(f'marginal_path_last_reaction_seconds{{{IMP}}}', instant=True, fmt="table")],
      12, 12, 8, {"Value #A": "in state", "Value #B": "active", "Value #C": "held out", "Value #D": "last rate ‰",
                  "Value #E": "last reaction (s)"},
      hide=("Time", "__name__", "job", "Value #A"), merge=True)
y[0] += 8

# ---------------------------------------------------------------- sampling
row("Sampling")
ts("Sampling reads and errors", "Direct reads the sampler issued per second, and how many failed or timed out.",
   [(f'sum by (instance, map, path) (rate(marginal_path_sampling_reads_total{{{IMP}}}[$__rate_interval]))', "reads " + PATH_LEGEND),
    (f'sum by (instance, map, path) (rate(marginal_path_sampling_errors_total{{{IMP}}}[$__rate_interval]))', "errors " + PATH_LEGEND),
    (f'sum by (instance, map, path) (rate(marginal_path_sampling_timeouts_total{{{IMP}}}[$__rate_interval]))', "timeouts " + PATH_LEGEND)],
   0, 12, unit="rps")
ts("Run in progress", "Reads and errors so far in each sampling run still running.",
   [(f'marginal_path_sampling_run_reads{{{IMP}}}', "reads " + PATH_LEGEND),
    (f'marginal_path_sampling_run_errors{{{IMP}}}', "errors " + PATH_LEGEND)],
   12, 12)
y[0] += 8
ts("Sampling runs finished", "Sampling runs that ended (with a verdict), per interval.",
   [(f'sum by (instance, map, path) (increase(marginal_path_sampling_runs_total{{{IMP}}}[$__rate_interval]))', PATH_LEGEND)],
   0, 8, bars=True)
bg = panel("bargauge", "Next recheck", "Time until each marginal path is sampled again.",
           [target(f'marginal_path_next_recheck_seconds{{{IMP}}}', PATH_LEGEND, instant=True)], 8, 8, 8, unit="s",
           options={"displayMode": "basic", "orientation": "horizontal", "showUnfilled": True,
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}})
bg["fieldConfig"]["defaults"]["min"] = 0
table("Last verdict", "Verdict of each path's last finished sampling run (none before the first).",
      [target(f'marginal_path_last_verdict{{{IMP}}} == 1', instant=True, fmt="table")],
      16, 8, 8, {}, hide=("Time", "__name__", "job", "Value"))
y[0] += 8

# ---------------------------------------------------------------- daemon & eBPF
row("Daemon and eBPF cost")
ts("eBPF CPU", "CPU time the eBPF programs take, as a share of one CPU (kernel bpf_stats).",
   [(f'sum by (instance, program) (rate(marginal_ebpf_program_run_seconds_total{{{I}}}[$__rate_interval]))', "{{instance}} {{program}}")],
   0, 8, unit="percentunit")
ts("eBPF runs", "Runs of each eBPF program per second.",
   [(f'sum by (instance, program) (rate(marginal_ebpf_program_runs_total{{{I}}}[$__rate_interval]))', "{{instance}} {{program}}")],
   8, 8, unit="ops")
ts("eBPF time per run", "Average time of one run of each eBPF program.",
   [(f'''sum by (instance, program) (rate(marginal_ebpf_program_run_seconds_total{{{I}}}[$__rate_interval]))
  / sum by (instance, program) (rate(marginal_ebpf_program_runs_total{{{I}}}[$__rate_interval]) > 0)''', "{{instance}} {{program}}")],
   16, 8, unit="s")
y[0] += 8
table("Daemons", "Version, actuator and uptime of each daemon.",
      [target(f'''marginal_uptime_seconds{{{I}}}
  * on (instance, job) group_left (version) marginal_build_info
  * on (instance, job) group_left (actuator) marginal_actuator_info''', instant=True, fmt="table")],
      0, 8, 7, {"Value": "uptime"})
panels[-1]["fieldConfig"]["overrides"] = [{"matcher": {"id": "byName", "options": "uptime"},
                                          "properties": [{"id": "unit", "value": "s"}]}]
table("Signals", "Kernel signals and whether they are live (1) on each host.",
      [target(f'marginal_signal_live{{{I}}}', instant=True, fmt="table")], 8, 6, 7, {"Value": "live"})
table("Maps", "Each map's active paths, whether checking is on, and its effective marginal_path_* settings.",
      [target(f'marginal_map_paths{{{IM}}}', instant=True, fmt="table"),
       target(f'marginal_map_active_paths{{{IM}}}', instant=True, fmt="table"),
       target(f'marginal_map_checking{{{IM}}}', instant=True, fmt="table"),
       target(f'marginal_map_double_failed_time_seconds{{{IM}}}', instant=True, fmt="table"),
       target(f'marginal_map_err_sample_time_seconds{{{IM}}}', instant=True, fmt="table"),
       target(f'marginal_map_err_rate_threshold_permille{{{IM}}}', instant=True, fmt="table"),
       target(f'marginal_map_err_recheck_gap_time_seconds{{{IM}}}', instant=True, fmt="table")],
      14, 10, 7, {"Value #A": "paths", "Value #B": "active", "Value #C": "checking",
                  "Value #D": "double failed s", "Value #E": "sample s", "Value #F": "threshold ‰",
                  "Value #G": "recheck gap s"}, merge=True)
y[0] += 7

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
    table("Target ports with marginal paths", "Per target port (FC WWPN, iSCSI portal, NVMe-oF address, SAS address), across all hosts: hosts and paths that are marginal (or slow) behind it, out of all. Marginal paths on two or more hosts behind one port point at the port, not the hosts.",
          [target(hosts_marginal, instant=True, fmt="table"),
           target(paths_marginal, instant=True, fmt="table"),
           target(f'count by (transport, target_port) (count by (instance, transport, target_port) ({info})) and on (transport, target_port) {paths_marginal}', instant=True, fmt="table"),
           target(f'count by (transport, target_port) ({info}) and on (transport, target_port) {paths_marginal}', instant=True, fmt="table")],
          0, 12, 8, {"Value #A": "hosts marginal", "Value #B": "paths marginal", "Value #C": "hosts", "Value #D": "paths"},
          merge=True)
    ts("Hosts with marginal paths per target port", "How many hosts have a marginal (or slow) path behind each target port, over time.",
       [(hosts_marginal, "{{transport}} {{target_port}}")], 12, 12, bars=True)
    y[0] += 8
    table("Paths and their ports", "Each path with its state, transport, host adapter and ports (marginal_path_info).",
          [target(f'marginal_path_state{{{IMP}}} * on (instance, job, map, path, device) group_left (transport, host, host_port, target_port, target_node) marginal_path_info', instant=True, fmt="table")],
          0, 24, 8, {}, hide=("Time", "__name__", "job", "Value"))
    y[0] += 8
    ts("FC host port errors", "Link failures, loss of sync/signal, CRC and other errors, and FPIN notifications each HBA port counted, per interval (kernel fc_host statistics).",
       [(f'sum by (instance, host, statistic) (increase(marginal_fc_host_statistic_total{{{I}, statistic=~"link_failure_count|loss_of_sync_count|loss_of_signal_count|prim_seq_protocol_err_count|invalid_tx_word_count|invalid_crc_count|error_frames|fpin_li|fpin_cn|fpin_dn"}}[$__rate_interval]))', "{{instance}} {{host}} {{statistic}}")],
       0, 12, bars=True)
    ts("FPIN per remote port", "Fabric notifications (link integrity, congestion, delivery) the kernel counted per FC remote port, per interval: the fabric naming a degrading port.",
       [(f'sum by (instance, target_port, statistic) (increase(marginal_fc_rport_statistic_total{{{I}, statistic=~"fpin_li|fpin_cn|fpin_dn"}}[$__rate_interval]))', "{{instance}} {{target_port}} {{statistic}}")],
       12, 12, bars=True)
    y[0] += 8

fleet_row()

def query_var(name, label, query, hide=0):
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "definition": query, "query": {"query": query, "refId": "StandardVariableQuery"},
            "refresh": 2, "sort": 1, "multi": True, "includeAll": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": [], "regex": "", "hide": hide, "skipUrlSync": False}

dashboard = {
    "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "description": "Prometheus that scrapes marginal's /metrics",
                  "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}],
    "__elements": {},
    "__requires": [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
        {"type": "panel", "id": "state-timeline", "name": "State timeline", "version": ""},
        {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
        {"type": "panel", "id": "table", "name": "Table", "version": ""},
        {"type": "panel", "id": "bargauge", "name": "Bar gauge", "version": ""},
    ],
    "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                              "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
                              "type": "dashboard"}]},
    "description": "marginal: marginal (flaky) dm-multipath paths: states, sampled error rates against thresholds, kernel-counted failures, sampling progress and eBPF cost.",
    "editable": True,
    "fiscalYearStartMonth": 0,
    "graphTooltip": 1,
    "id": None,
    "links": [],
    "panels": panels,
    "refresh": "30s",
    "schemaVersion": 39,
    "tags": ["marginal", "multipath", "storage"],
    "templating": {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {"selected": False, "text": "Prometheus", "value": "${DS_PROMETHEUS}"},
         "hide": 0, "includeAll": False, "multi": False, "options": [], "refresh": 1, "regex": "", "skipUrlSync": False},
        query_var("instance", "Host", "label_values(marginal_build_info, instance)"),
        query_var("map", "Map", 'label_values(marginal_map_paths{instance=~"$instance"}, map)'),
        query_var("path", "Path", 'label_values(marginal_path_active{instance=~"$instance", map=~"$map"}, path)'),
    ]},
    "time": {"from": "now-6h", "to": "now"},
    "timepicker": {},
    "timezone": "",
    "title": "marginal: multipath paths",
    "uid": "marginal-paths",
    "version": 1,
    "weekStart": "",
}
print(json.dumps(dashboard, indent=2, ensure_ascii=False))
