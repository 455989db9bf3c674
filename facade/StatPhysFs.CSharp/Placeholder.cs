namespace StatPhysFs.CSharp;
