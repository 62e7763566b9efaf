"""pip's build of the Python module: CMake builds the library and the bindings, and installs them
into a staging folder laid out as the package (the module and liblrsmeta side by side, the module
finding the library through $ORIGIN), which setuptools then packs. See pyproject.toml."""
import os
import re
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = os.path.abspath(os.path.join(self.build_temp, "cmake"))
        staging = os.path.abspath(os.path.join(self.build_temp, "staging"))
        shutil.rmtree(staging, ignore_errors=True)
        configure = ["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                     f"-DPython3_EXECUTABLE={sys.executable}", "-DLRSMETA_PYTHON=ON",
                     "-DLRSMETA_BUILD_TESTS=OFF", "-DLRSMETA_BUILD_BENCHMARKS=OFF", "-DLRSMETA_BUILD_CLI=OFF",
                     # The package's own layout: module and library in one folder.
                     "-DLRSMETA_PYTHON_INSTALL_DIR:STRING=package", "-DCMAKE_INSTALL_LIBDIR:STRING=package/lrsmeta",
                     "-DLRSMETA_CPU_ARCH=" + os.environ.get("LRSMETA_CPU_ARCH", "native")]
        configure += shlex.split(os.environ.get("LRSMETA_CMAKE_ARGS", ""))
        subprocess.run(configure, check=True)
        subprocess.run(["cmake", "--build", build, "-j", str(os.cpu_count() or 2), "--target", "lrsmeta_python"], check=True)
        subprocess.run(["cmake", "--install", build, "--prefix", staging], check=True)
        target = os.path.dirname(os.path.abspath(self.get_ext_fullpath(ext.name)))
        os.makedirs(target, exist_ok=True)
        package = os.path.join(staging, "package", "lrsmeta")
        # The module, the library under its soname (what the module asks for) and the backend
        # modules this build made (the library loads them from beside itself), as plain files.
        for name in os.listdir(package):
            if name.startswith("_lrsmeta") or re.fullmatch(r"liblrsmeta\.so\.\d+\.\d+|liblrsmeta_(cuda|mpi)\.so", name):
                shutil.copyfile(os.path.join(package, name), os.path.join(target, name))


setup(packages=["lrsmeta"], package_dir={"lrsmeta": "python/lrsmeta"},
      ext_modules=[Extension("lrsmeta._lrsmeta", sources=[])], cmdclass={"build_ext": CMakeBuild},
      options={"build": {"build_base": "build-pip"}, "egg_info": {"egg_base": "build-pip"}})
