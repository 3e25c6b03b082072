# SPDX-License-Identifier: GPL-3.0-or-later
"""Cross-check plugins/module_utils/nvidia.py against the PCI ID repository.

PCI_IDS below is the NVIDIA (10de) section of pci.ids, device lines with ids >= 0fc0 (Kepler on),
verbatim from two public versions of the database (pci.ids is GPL-2.0-or-later / BSD-3-Clause):
- Debian bookworm package ``pci.ids`` 0.0~2023.04.11-1 (/usr/share/misc/pci.ids), and
- NEWER: lines added or named after it, from github.com/pciutils/pciids commit
  006181e2c5d5b9a3b57d252aa5b3d827971d41a9 (H200, GH200, Blackwell).
Every DEVICES row must exist here with the same chip, and every display device of a known chip
that falls in a RANGES block must get that chip's architecture and compute capability.
"""
from __future__ import annotations

import re

import pytest

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import nvidia

PCI_IDS = """\
0fc0  GK107 [GeForce GT 640 OEM]
0fc1  GK107 [GeForce GT 640]
0fc2  GK107 [GeForce GT 630 OEM]
0fc5  GK107 [GeForce GT 1030]
0fc6  GK107 [GeForce GTX 650]
0fc8  GK107 [GeForce GT 740]
0fc9  GK107 [GeForce GT 730]
0fcd  GK107M [GeForce GT 755M]
0fce  GK107M [GeForce GT 640M LE]
0fd1  GK107M [GeForce GT 650M]
0fd2  GK107M [GeForce GT 640M]
0fd3  GK107M [GeForce GT 640M LE]
0fd4  GK107M [GeForce GTX 660M]
0fd5  GK107M [GeForce GT 650M Mac Edition]
0fd6  GK107M
0fd8  GK107M [GeForce GT 640M Mac Edition]
0fd9  GK107M [GeForce GT 645M]
0fdb  GK107M
0fdf  GK107M [GeForce GT 740M]
0fe0  GK107M [GeForce GTX 660M Mac Edition]
0fe1  GK107M [GeForce GT 730M]
0fe2  GK107M [GeForce GT 745M]
0fe3  GK107M [GeForce GT 745M]
0fe4  GK107M [GeForce GT 750M]
0fe5  GK107 [GeForce K340 USM]
0fe6  GK107 [GRID K1 NVS USM]
0fe7  GK107GL [GRID K100 vGPU]
0fe8  GK107M [N14P-GS]
0fe9  GK107M [GeForce GT 750M Mac Edition]
0fea  GK107M [GeForce GT 755M Mac Edition]
0fec  GK107M [GeForce 710A]
0fed  GK107M [GeForce 820M]
0fee  GK107M [GeForce 810M]
0fef  GK107GL [GRID K340]
0ff1  GK107 [NVS 1000]
0ff2  GK107GL [GRID K1]
0ff3  GK107GL [Quadro K420]
0ff5  GK107GL [GRID K1 Tesla USM]
0ff6  GK107GLM [Quadro K1100M]
0ff7  GK107GL [GRID K140Q vGPU]
0ff8  GK107GLM [Quadro K500M]
0ff9  GK107GL [Quadro K2000D]
0ffa  GK107GL [Quadro K600]
0ffb  GK107GLM [Quadro K2000M]
0ffc  GK107GLM [Quadro K1000M]
0ffd  GK107 [NVS 510]
0ffe  GK107GL [Quadro K2000]
0fff  GK107GL [Quadro 410]
1001  GK110B [GeForce GTX TITAN Z]
1003  GK110 [GeForce GTX Titan LE]
1004  GK110 [GeForce GTX 780]
1005  GK110 [GeForce GTX TITAN]
1007  GK110 [GeForce GTX 780 Rev. 2]
1008  GK110 [GeForce GTX 780 Ti 6GB]
100a  GK110B [GeForce GTX 780 Ti]
100c  GK110B [GeForce GTX TITAN Black]
101e  GK110GL [Tesla K20X]
101f  GK110GL [Tesla K20]
1020  GK110GL [Tesla K20X]
1021  GK110GL [Tesla K20Xm]
1022  GK110GL [Tesla K20c]
1023  GK110BGL [Tesla K40m]
1024  GK180GL [Tesla K40c]
1026  GK110GL [Tesla K20s]
1027  GK110BGL [Tesla K40st]
1028  GK110GL [Tesla K20m]
1029  GK110BGL [Tesla K40s]
102a  GK110BGL [Tesla K40t]
102d  GK210GL [Tesla K80]
102e  GK110BGL [Tesla K40d]
102f  GK110BGL [Tesla Stella Solo]
103a  GK110GL [Quadro K6000]
103c  GK110GL [Quadro K5200]
103f  GK110BGL [Tesla Stella SXM]
1040  GF119 [GeForce GT 520]
1042  GF119 [GeForce 510]
1045  GF119
1048  GF119 [GeForce 605]
1049  GF119 [GeForce GT 620 OEM]
104a  GF119 [GeForce GT 610]
104b  GF119 [GeForce GT 625 OEM]
104c  GF119 [GeForce GT 705]
104d  GF119 [GeForce GT 710]
1050  GF119M [GeForce GT 520M]
1051  GF119M [GeForce GT 520MX]
1052  GF119M [GeForce GT 520M]
1054  GF119M [GeForce 410M]
1055  GF119M [GeForce 410M]
1056  GF119M [NVS 4200M]
1057  GF119M [Quadro NVS 4200M]
1058  GF119M [GeForce 610M]
1059  GF119M [GeForce 610M]
105a  GF119M [GeForce 610M]
105b  GF119M [GeForce 705M]
107c  GF119 [NVS 315]
107d  GF119 [NVS 310]
1080  GF110 [GeForce GTX 580]
1081  GF110 [GeForce GTX 570]
1082  GF110 [GeForce GTX 560 Ti OEM]
1084  GF110 [GeForce GTX 560 OEM]
1086  GF110 [GeForce GTX 570 Rev. 2]
1087  GF110 [GeForce GTX 560 Ti 448 Cores]
1088  GF110 [GeForce GTX 590]
1089  GF110 [GeForce GTX 580 Rev. 2]
108b  GF110 [GeForce GTX 580]
108e  GF110GL [Tesla C2090]
1091  GF110GL [Tesla M2090]
1094  GF110GL [Tesla M2075]
1096  GF110GL [Tesla C2050 / C2075]
109a  GF100GLM [Quadro 5010M]
109b  GF100GL [Quadro 7000]
10c0  GT218 [GeForce 9300 GS Rev. 2]
10c3  GT218 [GeForce 8400 GS Rev. 3]
10c5  GT218 [GeForce 405]
10d8  GT218 [NVS 300]
10ef  GP102 HDMI Audio Controller
10f0  GP104 High Definition Audio Controller
10f1  GP106 High Definition Audio Controller
10f7  TU102 High Definition Audio Controller
10f8  TU104 HD Audio Controller
10f9  TU106 High Definition Audio Controller
1140  GF117M [GeForce 610M/710M/810M/820M / GT 620M/625M/630M/720M]
1180  GK104 [GeForce GTX 680]
1182  GK104 [GeForce GTX 760 Ti]
1183  GK104 [GeForce GTX 660 Ti]
1184  GK104 [GeForce GTX 770]
1185  GK104 [GeForce GTX 660 OEM]
1186  GK104 [GeForce GTX 660 Ti]
1187  GK104 [GeForce GTX 760]
1188  GK104 [GeForce GTX 690]
1189  GK104 [GeForce GTX 670]
118a  GK104GL [GRID K520]
118b  GK104GL [GRID K2 GeForce USM]
118c  GK104 [GRID K2 NVS USM]
118d  GK104GL [GRID K200 vGPU]
118e  GK104 [GeForce GTX 760 OEM]
118f  GK104GL [Tesla K10]
1191  GK104 [GeForce GTX 760 Rev. 2]
1193  GK104 [GeForce GTX 760 Ti OEM]
1194  GK104GL [Tesla K8]
1195  GK104 [GeForce GTX 660 Rev. 2]
1198  GK104M [GeForce GTX 880M]
1199  GK104M [GeForce GTX 870M]
119a  GK104M [GeForce GTX 860M]
119d  GK104M [GeForce GTX 775M Mac Edition]
119e  GK104M [GeForce GTX 780M Mac Edition]
119f  GK104M [GeForce GTX 780M]
11a0  GK104M [GeForce GTX 680M]
11a1  GK104M [GeForce GTX 670MX]
11a2  GK104M [GeForce GTX 675MX Mac Edition]
11a3  GK104M [GeForce GTX 680MX]
11a7  GK104M [GeForce GTX 675MX]
11a8  GK104GLM [Quadro K5100M]
11a9  GK104M [GeForce GTX 870M]
11af  GK104GLM [GRID IceCube]
11b0  GK104GL [GRID K240Q / K260Q vGPU]
11b1  GK104GL [GRID K2 Tesla USM]
11b4  GK104GL [Quadro K4200]
11b6  GK104GLM [Quadro K3100M]
11b7  GK104GLM [Quadro K4100M]
11b8  GK104GLM [Quadro K5100M]
11b9  GK104GLM
11ba  GK104GL [Quadro K5000]
11bb  GK104GL [Quadro 4100]
11bc  GK104GLM [Quadro K5000M]
11bd  GK104GLM [Quadro K4000M]
11be  GK104GLM [Quadro K3000M]
11bf  GK104GL [GRID K2]
11c0  GK106 [GeForce GTX 660]
11c2  GK106 [GeForce GTX 650 Ti Boost]
11c3  GK106 [GeForce GTX 650 Ti OEM]
11c4  GK106 [GeForce GTX 645 OEM]
11c5  GK106 [GeForce GT 740]
11c6  GK106 [GeForce GTX 650 Ti]
11c7  GK106 [GeForce GTX 750 Ti]
11c8  GK106 [GeForce GTX 650 OEM]
11cb  GK106 [GeForce GT 740]
11e0  GK106M [GeForce GTX 770M]
11e1  GK106M [GeForce GTX 765M]
11e2  GK106M [GeForce GTX 765M]
11e3  GK106M [GeForce GTX 760M]
11e7  GK106M
11fa  GK106GL [Quadro K4000]
11fc  GK106GLM [Quadro K2100M]
1200  GF114 [GeForce GTX 560 Ti]
1201  GF114 [GeForce GTX 560]
1202  GF114 [GeForce GTX 560 Ti OEM]
1203  GF114 [GeForce GTX 460 SE v2]
1205  GF114 [GeForce GTX 460 v2]
1206  GF114 [GeForce GTX 555]
1207  GF114 [GeForce GT 645 OEM]
1208  GF114 [GeForce GTX 560 SE]
1210  GF114M [GeForce GTX 570M]
1211  GF114M [GeForce GTX 580M]
1212  GF114M [GeForce GTX 675M]
1213  GF114M [GeForce GTX 670M]
1241  GF116 [GeForce GT 545 OEM]
1243  GF116 [GeForce GT 545]
1244  GF116 [GeForce GTX 550 Ti]
1245  GF116 [GeForce GTS 450 Rev. 2]
1246  GF116M [GeForce GT 550M]
1247  GF116M [GeForce GT 555M/635M]
1248  GF116M [GeForce GT 555M/635M]
1249  GF116 [GeForce GTS 450 Rev. 3]
124b  GF116 [GeForce GT 640 OEM]
124d  GF116M [GeForce GT 555M/635M]
1251  GF116M [GeForce GT 560M]
1280  GK208 [GeForce GT 635]
1281  GK208 [GeForce GT 710]
1282  GK208 [GeForce GT 640 Rev. 2]
1284  GK208 [GeForce GT 630 Rev. 2]
1286  GK208 [GeForce GT 720]
1287  GK208B [GeForce GT 730]
1288  GK208B [GeForce GT 720]
1289  GK208 [GeForce GT 710]
128a  GK208B
128b  GK208B [GeForce GT 710]
128c  GK208B
1290  GK208M [GeForce GT 730M]
1291  GK208M [GeForce GT 735M]
1292  GK208M [GeForce GT 740M]
1293  GK208M [GeForce GT 730M]
1294  GK208M [GeForce GT 740M]
1295  GK208M [GeForce 710M]
1296  GK208M [GeForce 825M]
1298  GK208M [GeForce GT 720M]
1299  GK208BM [GeForce 920M]
129a  GK208BM [GeForce 910M]
12a0  GK208
12b9  GK208GLM [Quadro K610M]
12ba  GK208GLM [Quadro K510M]
1340  GM108M [GeForce 830M]
1341  GM108M [GeForce 840M]
1344  GM108M [GeForce 845M]
1346  GM108M [GeForce 930M]
1347  GM108M [GeForce 940M]
1348  GM108M [GeForce 945M / 945A]
1349  GM108M [GeForce 930M]
134b  GM108M [GeForce 940MX]
134d  GM108M [GeForce 940MX]
134e  GM108M [GeForce 930MX]
134f  GM108M [GeForce 920MX]
137a  GM108GLM [Quadro K620M / Quadro M500M]
137b  GM108GLM [Quadro M520 Mobile]
137d  GM108M [GeForce 940A]
1380  GM107 [GeForce GTX 750 Ti]
1381  GM107 [GeForce GTX 750]
1382  GM107 [GeForce GTX 745]
1389  GM107GL [GRID M30]
1390  GM107M [GeForce 845M]
1391  GM107M [GeForce GTX 850M]
1392  GM107M [GeForce GTX 860M]
1393  GM107M [GeForce 840M]
1398  GM107M [GeForce 845M]
1399  GM107M [GeForce 945M]
139a  GM107M [GeForce GTX 950M]
139b  GM107M [GeForce GTX 960M]
139c  GM107M [GeForce 940M]
139d  GM107M [GeForce GTX 750 Ti]
13b0  GM107GLM [Quadro M2000M]
13b1  GM107GLM [Quadro M1000M]
13b2  GM107GLM [Quadro M600M]
13b3  GM107GLM [Quadro K2200M]
13b4  GM107GLM [Quadro M620 Mobile]
13b6  GM107GLM [Quadro M1200 Mobile]
13b9  GM107GL [NVS 810]
13ba  GM107GL [Quadro K2200]
13bb  GM107GL [Quadro K620]
13bc  GM107GL [Quadro K1200]
13bd  GM107GL [Tesla M10]
13c0  GM204 [GeForce GTX 980]
13c1  GM204
13c2  GM204 [GeForce GTX 970]
13c3  GM204
13d7  GM204M [GeForce GTX 980M]
13d8  GM204M [GeForce GTX 960 OEM / 970M]
13d9  GM204M [GeForce GTX 965M]
13da  GM204M [GeForce GTX 980 Mobile]
13e7  GM204GL [GeForce GTX 980 Engineering Sample]
13f0  GM204GL [Quadro M5000]
13f1  GM204GL [Quadro M4000]
13f2  GM204GL [Tesla M60]
13f3  GM204GL [Tesla M6]
13f8  GM204GLM [Quadro M5000M / M5000 SE]
13f9  GM204GLM [Quadro M4000M]
13fa  GM204GLM [Quadro M3000M]
13fb  GM204GLM [Quadro M5500]
1401  GM206 [GeForce GTX 960]
1402  GM206 [GeForce GTX 950]
1404  GM206 [GeForce GTX 960 FAKE]
1406  GM206 [GeForce GTX 960 OEM]
1407  GM206 [GeForce GTX 750 v2]
1427  GM206M [GeForce GTX 965M]
1430  GM206GL [Quadro M2000]
1431  GM206GL [Tesla M4]
1436  GM206GLM [Quadro M2200 Mobile]
15f0  GP100GL [Quadro GP100]
15f1  GP100GL
15f7  GP100GL [Tesla P100 PCIe 12GB]
15f8  GP100GL [Tesla P100 PCIe 16GB]
15f9  GP100GL [Tesla P100 SXM2 16GB]
1617  GM204M [GeForce GTX 980M]
1618  GM204M [GeForce GTX 970M]
1619  GM204M [GeForce GTX 965M]
161a  GM204M [GeForce GTX 980 Mobile]
1667  GM204M [GeForce GTX 965M]
1725  GP100
172e  GP100
172f  GP100
174d  GM108M [GeForce MX130]
174e  GM108M [GeForce MX110]
1789  GM107GL [GRID M3-3020]
179c  GM107 [GeForce 940MX]
17c2  GM200 [GeForce GTX TITAN X]
17c8  GM200 [GeForce GTX 980 Ti]
17f0  GM200GL [Quadro M6000]
17f1  GM200GL [Quadro M6000 24GB]
17fd  GM200GL [Tesla M40]
1ad0  Tegra PCIe x8 Endpoint
1ad1  Tegra PCIe x4/x8 Endpoint/Root Complex
1ad2  Tegra PCIe x1 Root Complex
1ad3  Xavier SATA Controller
1ad6  TU102 USB 3.1 Host Controller
1ad7  TU102 USB Type-C UCSI Controller
1ad8  TU104 USB 3.1 Host Controller
1ad9  TU104 USB Type-C UCSI Controller
1ada  TU106 USB 3.1 Host Controller
1adb  TU106 USB Type-C UCSI Controller
1aeb  TU116 High Definition Audio Controller
1aec  TU116 USB 3.1 Host Controller
1aed  TU116 USB Type-C UCSI Controller
1aef  GA102 High Definition Audio Controller
1af1  GA100 [A100 NVSwitch]
1b00  GP102 [TITAN X]
1b01  GP102 [GeForce GTX 1080 Ti 10GB]
1b02  GP102 [TITAN Xp]
1b04  GP102
1b06  GP102 [GeForce GTX 1080 Ti]
1b07  GP102 [P102-100]
1b30  GP102GL [Quadro P6000]
1b38  GP102GL [Tesla P40]
1b39  GP102GL [Tesla P10]
1b70  GP102GL
1b78  GP102GL
1b80  GP104 [GeForce GTX 1080]
1b81  GP104 [GeForce GTX 1070]
1b82  GP104 [GeForce GTX 1070 Ti]
1b83  GP104 [GeForce GTX 1060 6GB]
1b84  GP104 [GeForce GTX 1060 3GB]
1b87  GP104 [P104-100]
1ba0  GP104M [GeForce GTX 1080 Mobile]
1ba1  GP104M [GeForce GTX 1070 Mobile]
1ba2  GP104M [GeForce GTX 1070 Mobile]
1ba9  GP104M
1baa  GP104M
1bad  GP104 [GeForce GTX 1070 Engineering Sample]
1bb0  GP104GL [Quadro P5000]
1bb1  GP104GL [Quadro P4000]
1bb3  GP104GL [Tesla P4]
1bb4  GP104GL [Tesla P6]
1bb5  GP104GLM [Quadro P5200 Mobile]
1bb6  GP104GLM [Quadro P5000 Mobile]
1bb7  GP104GLM [Quadro P4000 Mobile]
1bb8  GP104GLM [Quadro P3000 Mobile]
1bb9  GP104GLM [Quadro P4200 Mobile]
1bbb  GP104GLM [Quadro P3200 Mobile]
1bc7  GP104 [P104-101]
1be0  GP104BM [GeForce GTX 1080 Mobile]
1be1  GP104BM [GeForce GTX 1070 Mobile]
1c00  GP106
1c01  GP106
1c02  GP106 [GeForce GTX 1060 3GB]
1c03  GP106 [GeForce GTX 1060 6GB]
1c04  GP106 [GeForce GTX 1060 5GB]
1c06  GP106 [GeForce GTX 1060 6GB Rev. 2]
1c07  GP106 [P106-100]
1c09  GP106 [P106-090]
1c20  GP106M [GeForce GTX 1060 Mobile]
1c21  GP106M [GeForce GTX 1050 Ti Mobile]
1c22  GP106M [GeForce GTX 1050 Mobile]
1c23  GP106M [GeForce GTX 1060 Mobile Rev. 2]
1c2d  GP106M
1c30  GP106GL [Quadro P2000]
1c31  GP106GL [Quadro P2200]
1c35  GP106M [Quadro P2000 Mobile]
1c36  GP106 [P106M]
1c60  GP106BM [GeForce GTX 1060 Mobile 6GB]
1c61  GP106BM [GeForce GTX 1050 Ti Mobile]
1c62  GP106BM [GeForce GTX 1050 Mobile]
1c70  GP106GL
1c81  GP107 [GeForce GTX 1050]
1c82  GP107 [GeForce GTX 1050 Ti]
1c83  GP107 [GeForce GTX 1050 3GB]
1c8c  GP107M [GeForce GTX 1050 Ti Mobile]
1c8d  GP107M [GeForce GTX 1050 Mobile]
1c8e  GP107M
1c8f  GP107M [GeForce GTX 1050 Ti Max-Q]
1c90  GP107M [GeForce MX150]
1c91  GP107M [GeForce GTX 1050 3 GB Max-Q]
1c92  GP107M [GeForce GTX 1050 Mobile]
1c94  GP107M [GeForce MX350]
1c96  GP107M [GeForce MX350]
1ca7  GP107GL
1ca8  GP107GL
1caa  GP107GL
1cb1  GP107GL [Quadro P1000]
1cb2  GP107GL [Quadro P600]
1cb3  GP107GL [Quadro P400]
1cb6  GP107GL [Quadro P620]
1cba  GP107GLM [Quadro P2000 Mobile]
1cbb  GP107GLM [Quadro P1000 Mobile]
1cbc  GP107GLM [Quadro P600 Mobile]
1cbd  GP107GLM [Quadro P620]
1ccc  GP107BM [GeForce GTX 1050 Ti Mobile]
1ccd  GP107BM [GeForce GTX 1050 Mobile]
1cfa  GP107GL [Quadro P2000]
1cfb  GP107GL [Quadro P1000]
1d01  GP108 [GeForce GT 1030]
1d02  GP108 [GeForce GT 1010]
1d10  GP108M [GeForce MX150]
1d11  GP108M [GeForce MX230]
1d12  GP108M [GeForce MX150]
1d13  GP108M [GeForce MX250]
1d16  GP108M [GeForce MX330]
1d33  GP108GLM [Quadro P500 Mobile]
1d34  GP108GLM [Quadro P520]
1d52  GP108BM [GeForce MX250]
1d56  GP108BM [GeForce MX330]
1d81  GV100 [TITAN V]
1db1  GV100GL [Tesla V100 SXM2 16GB]
1db2  GV100GL [Tesla V100 DGXS 16GB]
1db3  GV100GL [Tesla V100 FHHL 16GB]
1db4  GV100GL [Tesla V100 PCIe 16GB]
1db5  GV100GL [Tesla V100 SXM2 32GB]
1db6  GV100GL [Tesla V100 PCIe 32GB]
1db7  GV100GL [Tesla V100 DGXS 32GB]
1db8  GV100GL [Tesla V100 SXM3 32GB]
1dba  GV100GL [Quadro GV100]
1dbe  GV100 Engineering Sample
1df0  GV100GL [Tesla PG500-216]
1df2  GV100GL [Tesla PG503-216]
1df5  GV100GL [Tesla V100 SXM2 16GB]
1df6  GV100GL [Tesla V100S PCIe 32GB]
1e02  TU102 [TITAN RTX]
1e03  TU102 [GeForce RTX 2080 Ti 12GB]
1e04  TU102 [GeForce RTX 2080 Ti]
1e07  TU102 [GeForce RTX 2080 Ti Rev. A]
1e09  TU102 [CMP 50HX]
1e2d  TU102 [GeForce RTX 2080 Ti Engineering Sample]
1e2e  TU102 [GeForce RTX 2080 Ti 12GB Engineering Sample]
1e30  TU102GL [Quadro RTX 6000/8000]
1e36  TU102GL [Quadro RTX 6000]
1e37  TU102GL [Tesla T10 16GB / GRID RTX T10-2/T10-4/T10-8]
1e38  TU102GL [Tesla T40 24GB]
1e3c  TU102GL
1e3d  TU102GL
1e3e  TU102GL
1e78  TU102GL [Quadro RTX 6000/8000]
1e81  TU104 [GeForce RTX 2080 SUPER]
1e82  TU104 [GeForce RTX 2080]
1e84  TU104 [GeForce RTX 2070 SUPER]
1e87  TU104 [GeForce RTX 2080 Rev. A]
1e89  TU104 [GeForce RTX 2060]
1e90  TU104M [GeForce RTX 2080 Mobile]
1e91  TU104M [GeForce RTX 2070 SUPER Mobile / Max-Q]
1e93  TU104M [GeForce RTX 2080 SUPER Mobile / Max-Q]
1eab  TU104M
1eae  TU104M [GeForce GTX 2080 Engineering Sample]
1eb0  TU104GL [Quadro RTX 5000]
1eb1  TU104GL [Quadro RTX 4000]
1eb4  TU104GL [T4G]
1eb5  TU104GLM [Quadro RTX 5000 Mobile / Max-Q]
1eb6  TU104GLM [Quadro RTX 4000 Mobile / Max-Q]
1eb8  TU104GL [Tesla T4]
1eb9  TU104GL
1eba  TU104GL [PG189 SKU600]
1ebe  TU104GL
1ec2  TU104 [GeForce RTX 2070 SUPER]
1ec7  TU104 [GeForce RTX 2070 SUPER]
1ed0  TU104BM [GeForce RTX 2080 Mobile]
1ed1  TU104BM [GeForce RTX 2070 SUPER Mobile / Max-Q]
1ed3  TU104BM [GeForce RTX 2080 SUPER Mobile / Max-Q]
1ef5  TU104GLM [Quadro RTX 5000 Mobile Refresh]
1f02  TU106 [GeForce RTX 2070]
1f03  TU106 [GeForce RTX 2060 12GB]
1f04  TU106
1f06  TU106 [GeForce RTX 2060 SUPER]
1f07  TU106 [GeForce RTX 2070 Rev. A]
1f08  TU106 [GeForce RTX 2060 Rev. A]
1f09  TU106 [GeForce GTX 1660 SUPER]
1f0a  TU106 [GeForce GTX 1650]
1f0b  TU106 [CMP 40HX]
1f10  TU106M [GeForce RTX 2070 Mobile]
1f11  TU106M [GeForce RTX 2060 Mobile]
1f12  TU106M [GeForce RTX 2060 Max-Q]
1f14  TU106M [GeForce RTX 2070 Mobile / Max-Q Refresh]
1f15  TU106M [GeForce RTX 2060 Mobile]
1f2e  TU106M
1f36  TU106GLM [Quadro RTX 3000 Mobile / Max-Q]
1f42  TU106 [GeForce RTX 2060 SUPER]
1f47  TU106 [GeForce RTX 2060 SUPER]
1f50  TU106BM [GeForce RTX 2070 Mobile / Max-Q]
1f51  TU106BM [GeForce RTX 2060 Mobile]
1f54  TU106BM [GeForce RTX 2070 Mobile]
1f55  TU106BM [GeForce RTX 2060 Mobile]
1f76  TU106GLM [Quadro RTX 3000 Mobile Refresh]
1f81  TU117
1f82  TU117 [GeForce GTX 1650]
1f83  TU117 [GeForce GTX 1630]
1f91  TU117M [GeForce GTX 1650 Mobile / Max-Q]
1f92  TU117M [GeForce GTX 1650 Mobile]
1f94  TU117M [GeForce GTX 1650 Mobile]
1f95  TU117M [GeForce GTX 1650 Ti Mobile]
1f96  TU117M [GeForce GTX 1650 Mobile / Max-Q]
1f97  TU117M [GeForce MX450]
1f98  TU117M [GeForce MX450]
1f99  TU117M
1f9c  TU117M [GeForce MX450]
1f9d  TU117M [GeForce GTX 1650 Mobile / Max-Q]
1f9f  TU117M [GeForce MX550]
1fa0  TU117M [GeForce MX550]
1fa1  TU117M
1fae  TU117GL
1fb0  TU117GLM [Quadro T1000 Mobile]
1fb1  TU117GL [T600]
1fb2  TU117GLM [Quadro T400 Mobile]
1fb6  TU117GLM [T600 Laptop GPU]
1fb7  TU117GLM [T550 Laptop GPU]
1fb8  TU117GLM [Quadro T2000 Mobile / Max-Q]
1fb9  TU117GLM [Quadro T1000 Mobile]
1fba  TU117GLM [T600 Mobile]
1fbb  TU117GLM [Quadro T500 Mobile]
1fbc  TU117GLM [T1200 Laptop GPU]
1fbf  TU117GL
1fd9  TU117BM [GeForce GTX 1650 Mobile Refresh]
1fdd  TU117BM [GeForce GTX 1650 Mobile Refresh]
1ff0  TU117GL [T1000 8GB]
1ff2  TU117GL [T400 4GB]
1ff9  TU117GLM [Quadro T1000 Mobile]
2082  GA100 [CMP 170HX]
20b0  GA100 [A100 SXM4 40GB]
20b1  GA100 [A100 PCIe 40GB]
20b2  GA100 [A100 SXM4 80GB]
20b3  GA100 [A100-SXM-64GB]
20b5  GA100 [A100 PCIe 80GB]
20b6  GA100GL [PG506-232]
20b7  GA100GL [A30 PCIe]
20b8  GA100 [A100X]
20b9  GA100 [A30X]
20bb  GA100 [DRIVE A100 PROD]
20be  GA100 [GRID A100A]
20bf  GA100 [GRID A100B]
20c2  GA100 [CMP 170HX]
20f0  GA100 [A100-PG506-207]
20f1  GA100 [A100 PCIe 40GB]
20f2  GA100 [A100-PG506-217]
20f3  GA100 [A800-SXM4-80GB]
20f5  GA100 [A800 80GB PCIe]
20f6  GA100 [A800 40GB PCIe]
20fd  GA100 [A100T]
2182  TU116 [GeForce GTX 1660 Ti]
2183  TU116
2184  TU116 [GeForce GTX 1660]
2187  TU116 [GeForce GTX 1650 SUPER]
2188  TU116 [GeForce GTX 1650]
2189  TU116 [CMP 30HX]
2191  TU116M [GeForce GTX 1660 Ti Mobile]
2192  TU116M [GeForce GTX 1650 Ti Mobile]
21ae  TU116GL
21bf  TU116GL
21c2  TU116
21c4  TU116 [GeForce GTX 1660 SUPER]
21d1  TU116BM [GeForce GTX 1660 Ti Mobile]
2200  GA102
2203  GA102 [GeForce RTX 3090 Ti]
2204  GA102 [GeForce RTX 3090]
2205  GA102 [GeForce RTX 3080 Ti 20GB]
2206  GA102 [GeForce RTX 3080]
2207  GA102 [GeForce RTX 3070 Ti]
2208  GA102 [GeForce RTX 3080 Ti]
220a  GA102 [GeForce RTX 3080 12GB]
220d  GA102 [CMP 90HX]
2216  GA102 [GeForce RTX 3080 Lite Hash Rate]
222b  GA102 [GeForce RTX 3090 Engineering Sample]
222f  GA102 [GeForce RTX 3080 11GB / 12GB Engineering Sample]
2230  GA102GL [RTX A6000]
2231  GA102GL [RTX A5000]
2232  GA102GL [RTX A4500]
2233  GA102GL [RTX A5500]
2235  GA102GL [A40]
2236  GA102GL [A10]
2237  GA102GL [A10G]
2238  GA102GL [A10M]
223f  GA102GL
228b  GA104 High Definition Audio Controller
228e  GA106 High Definition Audio Controller
2296  Tegra PCIe Endpoint Virtual Network
22ba  AD102 High Definition Audio Controller
2302  GH100
2313  GH100 [H100 CNX]
2321  GH100
2322  GH100 [H800 PCIe]
2324  GH100 [H800]
2330  GH100[H100 SXM5 80GB]
2331  GH100 [H100 PCIe]
2336  GH100 [H100]
2339  GH100 [H100]
2414  GA103 [GeForce RTX 3060 Ti]
2420  GA103M [GeForce RTX 3080 Ti Mobile]
2438  GA103GLM [RTX A5500 Laptop GPU]
2460  GA103M [GeForce RTX 3080 Ti Laptop GPU]
2482  GA104 [GeForce RTX 3070 Ti]
2483  GA104
2484  GA104 [GeForce RTX 3070]
2486  GA104 [GeForce RTX 3060 Ti]
2487  GA104 [GeForce RTX 3060]
2488  GA104 [GeForce RTX 3070 Lite Hash Rate]
2489  GA104 [GeForce RTX 3060 Ti Lite Hash Rate]
248a  GA104 [CMP 70HX]
249c  GA104M [GeForce RTX 3080 Mobile / Max-Q 8GB/16GB]
249d  GA104M [GeForce RTX 3070 Mobile / Max-Q]
249f  GA104M
24a0  GA104 [Geforce RTX 3070 Ti Laptop GPU]
24a4  GA104M
24ac  GA104 [GeForce RTX 30x0 Engineering Sample]
24ad  GA104 [GeForce RTX 3060 Engineering Sample]
24af  GA104 [GeForce RTX 3070 Engineering Sample]
24b0  GA104GL [RTX A4000]
24b1  GA104GL [RTX A4000H]
24b6  GA104GLM [RTX A5000 Mobile]
24b7  GA104GLM [RTX A4000 Mobile]
24b8  GA104GLM [RTX A3000 Mobile]
24b9  GA104GLM [RTX A3000 12GB Laptop GPU]
24ba  GA104GLM [RTX A4500 Laptop GPU]
24bb  GA104GLM [RTX A3000 Laptop GPU]
24bf  GA104 [GeForce RTX 3070 Engineering Sample]
24c7  GA104 [GeForce RTX 3060 GDDR6X]
24c8  GA104 [GeForce RTX 3070 GDDR6X]
24c9  GA104 [GeForce RTX 3060 Ti GDDR6X]
24dc  GA104M [GeForce RTX 3080 Mobile / Max-Q 8GB/16GB]
24dd  GA104M [GeForce RTX 3070 Mobile / Max-Q]
24df  GA104M
24e0  GA104M [Geforce RTX 3070 Ti Laptop GPU]
24fa  GA104 [RTX A4500 Embedded GPU ]
2501  GA106 [GeForce RTX 3060]
2503  GA106 [GeForce RTX 3060]
2504  GA106 [GeForce RTX 3060 Lite Hash Rate]
2505  GA106
2507  GA106 [Geforce RTX 3050]
2508  GA106 [GeForce RTX 3050 OEM]
2509  GA106 [GeForce RTX 3060 12GB Rev. 2]
2520  GA106M [GeForce RTX 3060 Mobile / Max-Q]
2521  GA106M [GeForce RTX 3060 Laptop GPU]
2523  GA106M [GeForce RTX 3050 Ti Mobile / Max-Q]
252f  GA106 [GeForce RTX 3060 Engineering Sample]
2531  GA106 [RTX A2000]
2544  GA106 [GeForce RTX 3060]
2560  GA106M [GeForce RTX 3060 Mobile / Max-Q]
2561  GA106M [GeForce RTX 3060 Laptop GPU]
2563  GA106M [GeForce RTX 3050 Ti Mobile / Max-Q]
2571  GA106 [RTX A2000 12GB]
2582  GA107 [GeForce RTX 3050 8GB]
2583  GA107 [GeForce RTX 3050 4GB]
25a0  GA107M [GeForce RTX 3050 Ti Mobile]
25a2  GA107M [GeForce RTX 3050 Mobile]
25a3  GA107
25a4  GA107
25a5  GA107M [GeForce RTX 3050 Mobile]
25a6  GA107M [GeForce MX570]
25a7  GA107M [GeForce MX570]
25a9  GA107M [GeForce RTX 2050]
25aa  GA107M [GeForce MX570 A]
25ab  GA107M [GeForce RTX 3050 4GB Laptop GPU]
25ac  GN20-P0-R-K2 [GeForce RTX 3050 6GB Laptop GPU]
25ad  GA107 [GeForce RTX 2050]
25af  GA107 [GeForce RTX 3050 Engineering Sample]
25b5  GA107GLM [RTX A4 Mobile]
25b6  GA107GL [A2 / A16]
25b8  GA107GLM [RTX A2000 Mobile]
25b9  GA107GLM [RTX A1000 Laptop GPU]
25ba  GA107GLM [RTX A2000 8GB Laptop GPU]
25bb  GA107GLM [RTX A500 Laptop GPU]
25bc  GA107GLM [RTX A1000 6GB Laptop GPU]
25bd  GA107GLM [RTX A500 Laptop GPU]
25e0  GA107BM [GeForce RTX 3050 Ti Mobile]
25e2  GA107BM [GeForce RTX 3050 Mobile]
25e5  GA107BM [GeForce RTX 3050 Mobile]
25ec  GN20-P0-R-K2 [GeForce RTX 3050 6GB Laptop GPU]
25ed  GA107 [GeForce RTX 2050]
25f9  GA107 [RTX A1000 Embedded GPU ]
25fa  GA107 [RTX A2000 Embedded GPU]
25fb  GA107 [RTX A500 Embedded GPU]
2681  AD102 [RTX TITAN Ada]
2684  AD102 [GeForce RTX 4090]
26b1  AD102GL [L6000 / RTX 6000 Ada Generation]
26b5  AD102GL [L40]
26b8  AD102GL [L40G]
26f5  AD102GL [L40 CNX]
2704  AD103 [GeForce RTX 4080]
2717  GN21-X11 [GeForce RTX 4090 Laptop GPU]
2730  AD103GLM [RTX 5000 Ada Generation Laptop GPU]
2757  GN21-X11
2782  AD104 [GeForce RTX 4070 Ti]
2785  AD104
2786  AD104 [GeForce RTX 4070]
27a0  AD104M [GeForce RTX 4080 Max-Q / Mobile]
27b0  AD104GL [RTX 4000 SFF Ada Generation]
27b7  AD104GL [L16]
27b8  AD104GL [L4]
27ba  AD104GLM [RTX 4000 Ada Generation Laptop GPU]
27bb  AD104GLM [RTX 3500 Ada Generation Laptop GPU]
27e0  AD104M [GeForce RTX 4080 Max-Q / Mobile]
2803  AD106 [GeForce RTX 4060 Ti]
2820  AD106M [GeForce RTX 4070 Max-Q / Mobile]
2838  AD106GLM [RTX 3000 Ada Generation Laptop GPU]
2860  AD106M [GeForce RTX 4070 Max-Q / Mobile]
28a0  AD107M [GeForce RTX 4060 Max-Q / Mobile]
28a1  AD107M [GeForce RTX 4050 Max-Q / Mobile]
28b8  AD107GLM [RTX 2000 Ada Generation Laptop GPU]
28e0  AD107M [GeForce RTX 4060 Max-Q / Mobile]
28e1  AD107M [GeForce RTX 4050 Max-Q / Mobile]
"""

NEWER = """\
2321  GH100 [H100L 94GB]
26b9  AD102GL [L40S]
2882  AD107 [GeForce RTX 4060]
2335  GH100 [H200 SXM 141GB]
2342  GH100 [GH200 120GB / 480GB]
2901  GB100 [B200]
2b00  GB10B [Jetson AGX Thor]
2b85  GB202 [GeForce RTX 5090]
2bb1  GB202GL [RTX PRO 6000 Blackwell Workstation Edition]
2c02  GB203 [GeForce RTX 5080]
2c05  GB203 [GeForce RTX 5070 Ti]
2d04  GB206 [GeForce RTX 5060 Ti]
2d05  GB206 [GeForce RTX 5060]
2d83  GB207 [GeForce RTX 5050]
2e12  GB20B [GB10]
2f04  GB205 [GeForce RTX 5070]
2f80  GB205 High Definition Audio Controller
3182  GB110 [B300 SXM6 AC]
"""

# Non-display functions and SoC parts that share NVIDIA's id blocks.
_NOT_A_GPU = re.compile(
    r"Audio|USB|UCSI|NVSwitch|Tegra|SATA|Root|[Bb]ridge|Controller|Endpoint|Jetson|GB10\]")
_CHIP = re.compile(r"^(G[KMPVAHB]\d{3}|TU\d{3}|AD\d{3})")


def _entries():
    rows = {}
    for line in (PCI_IDS + NEWER).splitlines():
        device_id, _sep, name = line.partition("  ")
        rows[device_id] = name
    return rows


ENTRIES = _entries()


def _chip_of(name):
    # "GM204GL [Quadro M4000]" -> "GM204"; "GN21-X11 / AD103M ..." has no leading chip code
    match = _CHIP.match(name)
    return match.group(1) if match else None


def test_extract_is_complete_enough():
    assert len(ENTRIES) > 700
    assert ENTRIES["13f1"] == "GM204GL [Quadro M4000]"


@pytest.mark.parametrize("device_id", sorted(nvidia.DEVICES))
def test_table_rows_match_pci_ids(device_id):
    name, chip, _memory = nvidia.DEVICES[device_id]
    assert device_id in ENTRIES, "%s is not an NVIDIA device id in pci.ids" % device_id
    listed = ENTRIES[device_id]
    assert _chip_of(listed) == chip, (device_id, listed, chip)
    assert name in listed, (device_id, listed, name)


def _gpu_rows():
    for device_id, name in sorted(ENTRIES.items()):
        chip = _chip_of(name)
        if chip is None or _NOT_A_GPU.search(name) or chip not in nvidia.CHIPS:
            continue
        yield device_id, name, chip


def test_every_listed_gpu_of_a_known_chip_is_classified_right():
    checked = 0
    wrong = []
    for device_id, name, chip in _gpu_rows():
        arch, cc = nvidia.CHIPS[chip]
        info = nvidia.classify(device_id)
        checked += 1
        if (info["architecture"], info["compute_capability"]) != (arch, cc):
            wrong.append((device_id, name, info["architecture"], info["compute_capability"], arch, cc))
    assert checked > 600
    assert not wrong, wrong


def test_ranges_do_not_overlap_and_are_sorted():
    previous_end = -1
    for start, end, arch, cc in nvidia.RANGES:
        assert start <= end
        assert start > previous_end
        assert arch in nvidia.ARCHITECTURES
        nvidia.parse_cc(cc)
        previous_end = end


def test_every_range_holds_at_least_one_listed_gpu_of_its_architecture():
    for start, end, arch, _cc in nvidia.RANGES:
        hits = [d for d, _n, chip in _gpu_rows()
                if start <= int(d, 16) <= end and nvidia.CHIPS[chip][0] == arch]
        assert hits, "range %04x-%04x (%s) has no listed GPU" % (start, end, arch)
