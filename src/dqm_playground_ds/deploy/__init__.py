"""Deployment tools: Argo Workflows generator and the platform's TCP trigger service.

These are tools around the project, not part of the domain library, so they may import Kedro.
``python -m dqm_playground_ds.deploy.argo --help`` and ``python -m dqm_playground_ds.deploy.trigger --help``
are the entry points; ``docs/deployment.md`` explains how they fit together.
"""

#: Project directory inside the image (the Dockerfile's WORKDIR, kedro-docker's mount root):
#: ``data/`` below it is where the shared volume is mounted, ``conf/`` where configuration lives.
CONTAINER_PROJECT = "/home/kedro_docker"
