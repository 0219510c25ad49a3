"""voila settings of the presenter view (``make present``): local only, a token, few kernels.

voila reads this file when started with ``--Voila.config_file_paths=presenter``. Every page view
starts a Python kernel of about 1 GB, so a view needs the token printed at start, idle kernels
of closed pages are shut down, and no more than MAX_KERNELS run at once. A bigger machine can
allow more: ``CVAE_PRESENTER_MAX_KERNELS=8 make present``.
"""

import os

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web

MAX_KERNELS = int(os.environ.get("CVAE_PRESENTER_MAX_KERNELS", "4"))  # about 1 GB each
IDLE_SECONDS = int(os.environ.get("CVAE_PRESENTER_IDLE_SECONDS", "600"))  # then shut down


class CappedKernelManager(AsyncMappingKernelManager):
    """Refuse a new kernel while MAX_KERNELS run, instead of filling the memory."""

    async def start_kernel(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        """Start a kernel, or answer 503 when MAX_KERNELS are already running."""
        if kwargs.get("kernel_id") is None and len(self.list_kernel_ids()) >= MAX_KERNELS:
            raise web.HTTPError(503, f"{MAX_KERNELS} presenter page(s) open already: close one "
                                     f"and retry in {IDLE_SECONDS} s")
        return await super().start_kernel(*args, **kwargs)


c = get_config()  # noqa: F821 - defined by traitlets when it loads this file
c.Voila.ip = "127.0.0.1"  # never listen on the network: see the book's page instructors/present
c.Voila.open_browser = False
c.Voila.auto_token = True  # a fresh token per start, printed in the URL; --token=... sets one
c.Voila.tornado_settings = {"allow_remote_access": False}  # refuse foreign Host headers
c.VoilaConfiguration.multi_kernel_manager_class = CappedKernelManager
c.MappingKernelManager.cull_idle_timeout = IDLE_SECONDS
c.MappingKernelManager.cull_interval = min(60, IDLE_SECONDS)
c.MappingKernelManager.cull_connected = False  # an open page keeps its kernel
