from .trust_work_dir_hook import TrustWorkDirHook

__all__ = ['TrustWorkDirHook']
