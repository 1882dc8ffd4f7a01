"""deploy/docker-compose.yml and deploy/Dockerfile, checked as files (there is no Docker engine
here): the services exist, every bank container gets the settings it needs and only settings the
bank reads, ports bind where intended, Kafka is configured like the local broker, and every
command the containers run exists in this project."""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands, load_command_class

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
KAFKA_TEMPLATE = DEPLOY / "local" / "kafka" / "server.properties.template"

BACKING_SERVICES = {"postgres", "redis", "kafka"}
BANK_SERVICES = {
    "migrate",
    "kafka-topics",
    "web",
    "relay",
    "dispatcher",
    "payments-consumer",
    "celery-worker",
    "celery-beat",
}
# What every bank container must be given (config/settings.py reads each).
REQUIRED_ENV = {"DJANGO_ENV", "DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "FINTECH_EVENT_DISPATCH"}
# Read by the Python runtime or Django's entry points rather than by config/settings.py.
RUNTIME_ENV = {"DJANGO_SETTINGS_MODULE", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def bank(services):
    return {name: service for name, service in services.items() if "build" in service}


def environment(service):
    env = service.get("environment") or {}
    if isinstance(env, list):  # the "KEY=value" form
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def argv(command):
    return list(command) if isinstance(command, list) else shlex.split(command or "")


def settings_env_names():
    """Every environment variable config/settings.py reads (env_str/env_bool/env_int/env_list or
    os.environ), found in its syntax tree."""
    tree = ast.parse((ROOT / "config" / "settings.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = ast.unparse(node.func)
            if func in {"env_str", "env_bool", "env_int", "env_list", "os.environ.get", "os.getenv"}:
                names.add(node.args[0].value)
        elif (
            isinstance(node, ast.Subscript)
            and ast.unparse(node.value) == "os.environ"
            and isinstance(node.slice, ast.Constant)
        ):
            names.add(node.slice.value)
    return names


def kafka_env_name(prop):
    """The apache/kafka image's name for a server property: . -> _, _ -> __, - -> ___, KAFKA_ prefix."""
    return "KAFKA_" + prop.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def template_properties():
    props = {}
    for line in KAFKA_TEMPLATE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def listeners(value):
    """ "NAME://host:port,..." -> {NAME: (host, port)}"""
    result = {}
    for item in value.split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        result[name] = (host, int(port))
    return result


def local_default_port(script, variable):
    match = re.search(rf"\${{{variable}:-(\d+)}}", (DEPLOY / "local" / script).read_text())
    assert match, f"{script} has no default for {variable}"
    return int(match.group(1))


# -- docker-compose.yml ------------------------------------------------------------------------


def test_the_services_exist_with_the_intended_images(services):
    assert set(services) >= BACKING_SERVICES | BANK_SERVICES
    assert set(bank(services)) == BANK_SERVICES
    assert re.fullmatch(r"postgres:16(\.\d+)*(-[a-z0-9.]+)?", services["postgres"]["image"])
    assert re.fullmatch(r"redis:7(\.\d+)*(-[a-z0-9.]+)?", services["redis"]["image"])
    assert re.fullmatch(r"apache/kafka:4\.\d+(\.\d+)*", services["kafka"]["image"])


def test_every_bank_container_is_built_from_the_dockerfile_at_the_repository_root(services):
    for name, service in bank(services).items():
        build = service["build"]
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == ROOT, name
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name
        assert service["image"] == services["web"]["image"], "one image for every bank container"


def test_every_bank_container_gets_the_settings_it_needs_and_only_settings_the_bank_reads(services):
    known = settings_env_names()
    assert known >= REQUIRED_ENV, "config/settings.py no longer reads one of the required variables"
    postgres_env = environment(services["postgres"])
    kafka_advertised = listeners(environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"])
    for name, service in bank(services).items():
        env = environment(service)
        assert env.keys() >= REQUIRED_ENV, f"{name} misses {REQUIRED_ENV - env.keys()}"
        assert env.keys() <= known | RUNTIME_ENV, f"{name} sets what the bank never reads: {env.keys() - known}"
        assert env["DJANGO_ENV"] == "development"
        assert env["FINTECH_EVENT_DISPATCH"] in {"celery", "worker"}

        database = dj_database_url.parse(env["DATABASE_URL"])
        assert database["ENGINE"] == "django.db.backends.postgresql"
        assert database["HOST"] == "postgres"
        assert database["PORT"] in (5432, "5432", "", None)
        assert (database["USER"], database["PASSWORD"], database["NAME"]) == (
            postgres_env["POSTGRES_USER"],
            postgres_env["POSTGRES_PASSWORD"],
            postgres_env["POSTGRES_DB"],
        )
        redis = urlsplit(env["REDIS_URL"])
        assert (redis.scheme, redis.hostname, redis.port or 6379) == ("redis", "redis", 6379)
        for server in env["KAFKA_BOOTSTRAP_SERVERS"].split(","):
            host, _, port = server.rpartition(":")
            assert (host, int(port)) in kafka_advertised.values(), f"{server} is not a listener of the broker"
            assert host == "kafka", "containers reach the broker by its service name"


def test_celery_dispatch_has_a_worker_and_exactly_one_beat_on_the_projects_celery_app(services):
    from celery import Celery

    dispatch = {environment(service)["FINTECH_EVENT_DISPATCH"] for service in bank(services).values()}
    assert len(dispatch) == 1, "every bank container must dispatch the same way"
    commands = {name: argv(service.get("command")) for name, service in services.items()}
    workers = [name for name, cmd in commands.items() if cmd[:1] == ["celery"] and "worker" in cmd]
    beats = [name for name, cmd in commands.items() if cmd[:1] == ["celery"] and "beat" in cmd]
    assert workers == ["celery-worker"]
    assert beats == ["celery-beat"]
    for name in workers + beats:
        cmd = commands[name]
        app_module = cmd[cmd.index("-A") + 1]
        assert app_module == "config.celery"
        app = importlib.import_module(app_module).app
        assert isinstance(app, Celery)
    app.loader.import_default_modules()
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks, f"the beat schedules an unknown task {entry['task']}"


def test_ports_bind_to_localhost_on_the_same_ports_as_deploy_local(services):
    expected = {
        "postgres": f"127.0.0.1:{local_default_port('postgres.sh', 'FINTECH_PG_PORT')}:5432",
        "redis": f"127.0.0.1:{local_default_port('redis.sh', 'FINTECH_REDIS_PORT')}:6379",
        "kafka": f"127.0.0.1:{local_default_port('kafka.sh', 'FINTECH_KAFKA_PORT')}:59092",
        "web": "127.0.0.1:8000:8000",
    }
    published = {name: service["ports"] for name, service in services.items() if service.get("ports")}
    assert published == {name: [mapping] for name, mapping in expected.items()}

    # The broker advertises to the host the address the host reaches, and listens where it is published.
    kafka = environment(services["kafka"])
    host_ip, host_port, container_port = expected["kafka"].split(":")
    advertised = listeners(kafka["KAFKA_ADVERTISED_LISTENERS"])
    listening = listeners(kafka["KAFKA_LISTENERS"])
    assert advertised["HOST"] == (host_ip, int(host_port))
    assert listening["HOST"][1] == int(container_port)
    assert listening["PLAINTEXT"][1] == advertised["PLAINTEXT"][1]
    assert advertised["PLAINTEXT"][0] == "kafka" == services["kafka"]["hostname"]
    assert "CONTROLLER" not in advertised
    # gunicorn binds all interfaces inside the container, on the published container port.
    web = argv(services["web"]["command"])
    assert web[web.index("--bind") + 1] == "0.0.0.0:8000"


def test_kafka_is_configured_like_the_local_broker(services):
    env = environment(services["kafka"])
    props = template_properties()
    same = [key for key in props if key.startswith(("offsets.", "transaction.state.log.", "share.coordinator."))]
    assert len(same) >= 8, "the template's internal-topic settings were not found"
    same += [
        "process.roles",
        "node.id",
        "controller.listener.names",
        "inter.broker.listener.name",
        "auto.create.topics.enable",
        "num.partitions",
        "default.replication.factor",
        "min.insync.replicas",
        "group.initial.rebalance.delay.ms",
        "log.cleaner.dedupe.buffer.size",
    ]
    for key in same:
        assert env.get(kafka_env_name(key)) == props[key], f"{key}: {env.get(kafka_env_name(key))} != {props[key]}"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])
    voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voter == f"{env['KAFKA_NODE_ID']}@kafka:{listeners(env['KAFKA_LISTENERS'])['CONTROLLER'][1]}"
    assert {"kafka-data:/var/lib/kafka/data"} <= set(services["kafka"]["volumes"])
    assert env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"


def test_every_manage_py_command_in_the_compose_file_is_a_command_of_this_project(services):
    used = set()
    for service in services.values():
        lines = [argv(service.get("command"))]
        test = (service.get("healthcheck") or {}).get("test") or []
        lines += [shlex.split(test[1])] if test[:1] == ["CMD-SHELL"] else [list(test)]
        for words in lines:
            used |= {words[i + 1] for i, word in enumerate(words[:-1]) if word.endswith("manage.py")}
    assert used >= {"migrate", "kafka_topics", "relay_outbox", "dispatch_events"}
    commands = get_commands()
    for name in used:
        assert name in commands, f"manage.py {name} is not a command of this project"
        load_command_class(commands[name], name)  # importable, as call_command would load it


def test_healthchecks_guard_what_others_wait_for(services):
    for name in ("postgres", "redis", "kafka", "web", "celery-worker"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends.items():
            assert target in services, f"{name} depends on an unknown service {target}"
            if rule["condition"] == "service_healthy":
                assert services[target].get("healthcheck"), f"{name} waits for {target}, which has no healthcheck"
            elif rule["condition"] == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is a one-shot: it must not restart"
    # The schema is in place before anything of the bank that uses the database starts.
    for name in BANK_SERVICES - {"migrate", "kafka-topics", "celery-beat"}:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
    assert services["relay"]["depends_on"]["kafka-topics"]["condition"] == "service_completed_successfully"


# -- Dockerfile ---------------------------------------------------------------------------------


def dockerfile_instructions():
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_the_image_is_python_3_11_slim_and_installs_requirements_txt():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    copies = [i for i, (keyword, rest) in enumerate(instructions) if keyword == "COPY" and "requirements.txt" in rest]
    installs = [
        i
        for i, (keyword, rest) in enumerate(instructions)
        if keyword == "RUN" and "pip install" in rest and re.search(r"-r\s+requirements\.txt\b", rest)
    ]
    assert copies, "requirements.txt is not copied into the image"
    assert installs, "requirements.txt is not installed with pip install -r"
    assert copies[0] < installs[0], "requirements.txt is copied, then installed"
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^gunicorn==", requirements, re.M), "the web command needs gunicorn in requirements.txt"


def test_the_image_copies_every_first_party_package_it_runs():
    copied = set()
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            sources = [word for word in shlex.split(rest) if not word.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
                copied.add(source.rstrip("/"))
    first_party = {app.split(".")[0] for app in settings.INSTALLED_APPS if (ROOT / app.split(".")[0]).is_dir()}
    first_party -= {"tests"}  # the test-only probe context
    assert first_party | {"config", "manage.py"} <= copied


def test_the_container_runs_as_a_non_root_user():
    instructions = dockerfile_instructions()
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users, "no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    created = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert re.search(rf"\b(useradd|adduser)\b.*\b{re.escape(user)}\b", created), f"user {user} is not created"
    cmd = [rest for keyword, rest in instructions if keyword == "CMD"][-1]
    words = ast.literal_eval(cmd)
    assert words[:2] == ["gunicorn", "config.wsgi:application"]
    assert words[words.index("--bind") + 1] == "0.0.0.0:8000"


def test_the_web_container_and_the_image_run_gunicorn_with_the_banks_configuration(services):
    """The same server as `make run` (config/gunicorn.py), its size left to the configuration."""
    image_cmd = ast.literal_eval([rest for keyword, rest in dockerfile_instructions() if keyword == "CMD"][-1])
    for words in (argv(services["web"]["command"]), image_cmd):
        assert words[:2] == ["gunicorn", "config.wsgi:application"]
        assert words[words.index("--config") + 1] == "python:config.gunicorn"
        assert not {"--workers", "-w", "--threads", "--worker-class", "-k"} & set(words), "sized in config/gunicorn.py"
    assert importlib.import_module("config.gunicorn").worker_class == "gthread"
