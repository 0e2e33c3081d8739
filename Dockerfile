# Image of the dqm-playground-ds Kedro project (docs/deployment.md):
#   docker build -t dqm-playground-ds .          (or: kedro docker build --uid 999 --gid 0)
#   docker run --rm -v "$PWD/data:/home/kedro_docker/data" -e KEDRO_ENV=ci dqm-playground-ds
# The project lives in /home/kedro_docker (kedro-docker's mount root); data/ is meant to be a
# mounted volume. KEDRO_ENV picks the configuration environment of the default `kedro run`.
# tests/deploy/test_docker.py runs the two pip steps below in a fresh virtual environment.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${BASE_IMAGE} AS runtime
# kedro docker build passes the host's uid/gid; group 0 lets OpenShift's arbitrary uids write
ARG KEDRO_UID=999
ARG KEDRO_GID=0
# HOME: OpenShift's arbitrary uid has no passwd entry (HOME would be /); matplotlib and Kedro
# write their caches below it
ENV HOME=/home/kedro_docker \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KEDRO_DISABLE_TELEMETRY=1 \
    DO_NOT_TRACK=1 \
    MPLBACKEND=Agg \
    KEDRO_ENV=local

# the package and its runtime dependencies only: no test/dev extras, no Jupyter
COPY --from=builder /wheels /tmp/wheels
RUN python -m pip install --no-cache-dir /tmp/wheels/*.whl && rm -rf /tmp/wheels

RUN if [ "${KEDRO_UID}" = "0" ]; then \
        echo "KEDRO_UID=0 would run as root: use kedro docker build --uid 999" >&2; exit 1; \
    fi \
    && (getent group "${KEDRO_GID}" >/dev/null || groupadd -g "${KEDRO_GID}" kedro_group) \
    && useradd -l -m -d /home/kedro_docker -s /bin/bash -g "${KEDRO_GID}" -u "${KEDRO_UID}" kedro_docker

WORKDIR /home/kedro_docker
COPY --chown=${KEDRO_UID}:${KEDRO_GID} pyproject.toml .telemetry ./
COPY --chown=${KEDRO_UID}:${KEDRO_GID} conf ./conf
RUN mkdir -p src logs data/01_raw data/02_intermediate data/03_primary data/04_feature \
        data/05_model_input data/06_models data/07_model_output data/08_reporting \
    && chown -R "${KEDRO_UID}:${KEDRO_GID}" /home/kedro_docker \
    && chmod -R g=u /home/kedro_docker

USER ${KEDRO_UID}
# the platform trigger: python -m dqm_playground_ds.deploy.trigger (docs/deployment.md)
EXPOSE 8888
CMD ["kedro", "run"]
