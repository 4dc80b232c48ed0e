"""Registering mmclip's modules and making ``mmclip`` the default scope."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmclip module so it is registered, and optionally make
    ``mmclip`` the default scope (configs set ``default_scope='mmclip'``).

    Args:
        init_default_scope (bool): Set the global default scope to
            ``mmclip``. Defaults to True.
    """
    import mmclip.datasets  # noqa: F401
    import mmclip.engine  # noqa: F401
    import mmclip.evaluation  # noqa: F401
    import mmclip.models  # noqa: F401
    import mmclip.visualization  # noqa: F401
    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None:
        DefaultScope.get_instance('mmclip', scope_name='mmclip')
    elif current.scope_name != 'mmclip':
        warnings.warn(f'The default scope was "{current.scope_name}"; '
                      '`register_all_modules` switches it to "mmclip".')
        DefaultScope.get_instance(
            f'mmclip-{datetime.datetime.now()}', scope_name='mmclip')
