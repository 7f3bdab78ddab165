"""A tiny Zabbix 6.0 JSON-RPC client for the end-to-end tests (standard library only).

    api = ZabbixAPI("http://127.0.0.1:8089/api_jsonrpc.php")
    api.login("Admin", "zabbix")
    api.call("host.get", {"output": ["hostid"]})

Helpers cover what the tests need: importing a template file, creating a host group and a host
linked to a template, making the server reload its configuration cache, reading history with the
right value type, and reading item state / error. Every wait is bounded by time and count.
"""
import json
import os
import subprocess
import time
import urllib.error
import urllib.request

# history.get "history" parameter / item value_type
VALUE_TYPE = {"float": 0, "char": 1, "log": 2, "unsigned": 3, "text": 4}
ITEM_STATE_NORMAL, ITEM_STATE_NOTSUPPORTED = "0", "1"

IMPORT_RULES = {
    "groups": {"createMissing": True},
    "templates": {"createMissing": True, "updateExisting": True},
    "templateLinkage": {"createMissing": True},
    # deleteMissing: what a newer template version drops (a trigger, an item) goes on re-import
    "items": {"createMissing": True, "updateExisting": True, "deleteMissing": True},
    "triggers": {"createMissing": True, "updateExisting": True, "deleteMissing": True},
    "graphs": {"createMissing": True, "updateExisting": True, "deleteMissing": True},
    "discoveryRules": {"createMissing": True, "updateExisting": True, "deleteMissing": True},
    "templateDashboards": {"createMissing": True, "updateExisting": True, "deleteMissing": True},
    "valueMaps": {"createMissing": True, "updateExisting": True},
}


class ZabbixAPIError(RuntimeError):
    def __init__(self, method, error):
        self.method, self.error = method, error
        super().__init__(f"{method}: {error.get('message')} {error.get('data')}")


class ZabbixAPI:
    def __init__(self, url, timeout=60):
        self.url, self.timeout = url, timeout
        self.auth = None
        self._id = 0

    def _post(self, payload):
        req = urllib.request.Request(self.url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json-rpc"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.load(resp)

    def call(self, method, params=None):
        self._id += 1
        payload = {"jsonrpc": "2.0", "method": method, "params": params if params is not None else {},
                   "id": self._id}
        if self.auth and method not in ("user.login", "apiinfo.version"):
            payload["auth"] = self.auth          # 6.0: token in the body ("auth"), not a header
        answer = self._post(payload)
        if "error" in answer:
            raise ZabbixAPIError(method, answer["error"])
        return answer["result"]

    def version(self):
        return self.call("apiinfo.version")

    def login(self, user="Admin", password="zabbix"):
        self.auth = None
        self.auth = self.call("user.login", {"username": user, "password": password})  # 6.0: username
        return self.auth

    def logout(self):
        if self.auth:
            try:
                self.call("user.logout")
            finally:
                self.auth = None

    # ---------------------------------------------------------------- templates
    def import_file(self, path, rules=None):
        """configuration.import of a YAML/XML/JSON file; raises ZabbixAPIError on any import error."""
        fmt = {"yaml": "yaml", "yml": "yaml", "xml": "xml", "json": "json"}[path.rsplit(".", 1)[-1]]
        with open(path, encoding="utf-8") as f:
            source = f.read()
        return self.call("configuration.import",
                         {"format": fmt, "source": source, "rules": rules or IMPORT_RULES})

    def template_id(self, name):
        res = self.call("template.get", {"output": ["templateid"], "filter": {"host": [name]}})
        return res[0]["templateid"] if res else None

    # ---------------------------------------------------------------- hosts
    def ensure_hostgroup(self, name):
        res = self.call("hostgroup.get", {"output": ["groupid"], "filter": {"name": [name]}})
        if res:
            return res[0]["groupid"]
        return self.call("hostgroup.create", {"name": name})["groupids"][0]

    def delete_host(self, host):
        res = self.call("host.get", {"output": ["hostid"], "filter": {"host": [host]}})
        if res:
            self.call("host.delete", [r["hostid"] for r in res])

    def create_host(self, host, group, template, agent_ip="127.0.0.1", agent_port=10050,
                    macros=None, with_agent_interface=True, replace=True):
        """Host in `group` (created if missing) linked to `template` (visible or technical name).

        With an agent interface on agent_ip:agent_port unless with_agent_interface is False
        (trapper-only hosts need none). `macros`: {"{$NAME}": "value"} host macros.
        Returns the hostid.
        """
        if replace:
            self.delete_host(host)
        groupid = self.ensure_hostgroup(group)
        params = {"host": host, "groups": [{"groupid": groupid}]}
        if template is not None:            # None: a host without template (items made by hand)
            tid = self.template_id(template)
            if tid is None:
                raise LookupError(f"template {template!r} not found")
            params["templates"] = [{"templateid": tid}]
        if with_agent_interface:
            params["interfaces"] = [{"type": 1, "main": 1, "useip": 1, "ip": agent_ip, "dns": "",
                                     "port": str(agent_port)}]
        if macros:
            params["macros"] = [{"macro": k, "value": v} for k, v in macros.items()]
        return self.call("host.create", params)["hostids"][0]

    # ---------------------------------------------------------------- items / history
    def items(self, hostid, **extra):
        params = {"output": ["itemid", "key_", "name", "type", "value_type", "state", "error",
                             "lastclock", "lastvalue", "status", "delay", "flags"],
                  "hostids": [hostid], "sortfield": "key_"}
        params.update(extra)
        return self.call("item.get", params)

    def item_states(self, hostid):
        """{key: (state, error)}; state "0" = normal, "1" = not supported."""
        return {i["key_"]: (i["state"], i["error"]) for i in self.items(hostid)}

    def history(self, item, time_from=None, limit=100):
        """Values of one item (a dict from items()), newest first: [(clock, ns, value), ...]."""
        params = {"output": "extend", "history": int(item["value_type"]), "itemids": [item["itemid"]],
                  "sortfield": "clock", "sortorder": "DESC", "limit": limit}
        if time_from is not None:
            params["time_from"] = int(time_from)
        return [(int(r["clock"]), int(r["ns"]), r["value"]) for r in self.call("history.get", params)]

    def values_at(self, items, clock, ns):
        """Values stored at exactly (clock, ns) for many items (dicts from items()), one
        history.get per value type: {key: value string}; items without such a value are left out."""
        by_type = {}
        for it in items:
            by_type.setdefault(int(it["value_type"]), []).append(it)
        out = {}
        for vt, group in by_type.items():
            keys = {g["itemid"]: g["key_"] for g in group}
            rows = self.call("history.get", {"output": "extend", "history": vt,
                                             "itemids": list(keys), "time_from": clock,
                                             "time_till": clock})
            for r in rows:
                if int(r["ns"]) == ns:
                    out[keys[r["itemid"]]] = r["value"]
        return out

    def problems(self, hostid, triggerids):
        """problem.get for these triggers, resolved ones included while recent."""
        return self.call("problem.get", {"output": "extend", "hostids": [hostid],
                                         "objectids": [str(t) for t in triggerids],
                                         "source": 0, "object": 0, "recent": True})

    def check_now(self, itemids):
        """Ask the server to poll these items at once (task.create type 6, "check now")."""
        return self.call("task.create", [{"type": 6, "request": {"itemid": str(i)}} for i in itemids])


# -------------------------------------------------------------------- server side helpers
def reload_config_cache(server_conf, timeout=15):
    """`zabbix_server -c CONF -R config_cache_reload`: new hosts/items known to the server now."""
    subprocess.run(["zabbix_server", "-c", server_conf, "-R", "config_cache_reload"], check=True,
                   timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_config_sync(server_conf, check, timeout=60, what="the server to know the new objects"):
    """Reload the server's configuration cache, then poll check() (bounded); reload again every
    5 s in case a reload raced with the API change. Returns check()'s first truthy value."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 5) + 1):
        reload_config_cache(server_conf)
        try:
            return wait_until(check, min(5, max(0.5, deadline - time.monotonic())), 0.5, what)
        except TimeoutError:
            if time.monotonic() >= deadline:
                break
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def wait_until(predicate, timeout, interval=1.0, what="condition"):
    """Call predicate() until it returns a truthy value; bounded by time and count."""
    deadline = time.monotonic() + timeout
    tries = max(1, int(timeout / interval) + 1)
    last_exc = None
    for _ in range(tries):
        try:
            value = predicate()
            if value:
                return value
        except (ZabbixAPIError, urllib.error.URLError, OSError) as exc:   # transient while starting
            last_exc = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                       + (f" (last error: {last_exc})" if last_exc else ""))


# ---------------------------------------------------------------- shared by the e2e test files
def zabbix_env(*args, timeout=900):
    """scripts/zabbix-env ARGS (up, down, status, stop-server, start-server); its stdout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run([os.path.join(root, "scripts", "zabbix-env"), *args], check=True,
                          timeout=timeout, stdout=subprocess.PIPE, text=True).stdout


def write_private(directory, name, text):
    """Writes DIR/NAME with mode 0600 (PSK files, configs) and returns its path."""
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path
